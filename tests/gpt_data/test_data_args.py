"""Reading the data flags: --split, --data-path forms, args files, requested sizes, config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gpt_data.blend import get_blend_and_blend_per_split, get_blend_from_list
from gpt_data.builder import get_train_valid_test_num_samples
from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.splits import parse_and_normalize_split, split_indices, split_matrix_from_string


def test_split_string_is_normalised_into_bookends() -> None:
    assert parse_and_normalize_split("969,30,1") == [0.969, 0.03, 0.001]
    assert split_matrix_from_string("969, 30, 1") == [(0, 0.969), (0.969, 0.999), (0.999, 1.0)]
    assert split_matrix_from_string("90,10,0") == [(0, 0.9), (0.9, 1.0), None]
    assert split_matrix_from_string("1") == [(0, 1.0), None, None]
    assert split_matrix_from_string("1,1,1")[1] == (1 / 3, 2 / 3)


def test_split_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="--split"):
        parse_and_normalize_split("0,0,0")
    with pytest.raises(ValueError, match="--split"):
        parse_and_normalize_split("1,2,3,4")


def test_split_indices_round_the_bookends() -> None:
    assert split_indices(200, (0, 0.9)).tolist() == list(range(180))
    assert split_indices(200, (0.9, 1.0)).tolist() == list(range(180, 200))
    assert split_indices(10, (0.969, 0.999)).dtype == np.int32


def test_data_path_forms() -> None:
    assert get_blend_from_list(["p"]) == (["p"], None)
    assert get_blend_from_list(["30", "a ", "70", "b"]) == (["a", "b"], [30.0, 70.0])
    assert get_blend_from_list(["a", "b"]) == (["a", "b"], None)
    assert get_blend_from_list(["a", "b", "c"]) == (["a", "b", "c"], None)
    assert get_blend_from_list(None) is None
    with pytest.raises(ValueError, match="mixes weights and prefixes"):
        get_blend_from_list(["0.5", "a", "b", "c"])


def test_data_args_files(tmp_path) -> None:
    args_file = tmp_path / "data.txt"
    args_file.write_text("0.4 /d/a\n0.6   /d/b\n")
    assert get_blend_and_blend_per_split(data_args_path=str(args_file)) == (
        (["/d/a", "/d/b"], [0.4, 0.6]),
        None,
    )
    per_split = tmp_path / "splits.json"
    per_split.write_text(json.dumps({"train": "1 /d/a 3 /d/b", "valid": ["/d/v"], "test": None}))
    blend, blends = get_blend_and_blend_per_split(per_split_data_args_path=str(per_split))
    assert blend is None
    assert blends == [(["/d/a", "/d/b"], [1.0, 3.0]), (["/d/v"], None), None]
    with pytest.raises(ValueError, match="missing.json"):
        get_blend_and_blend_per_split(data_args_path=str(tmp_path / "missing.json"))


def test_per_split_paths_and_mock() -> None:
    blend, blends = get_blend_and_blend_per_split(
        train_data_path=["t"], valid_data_path=["v1", "v2"]
    )
    assert blend is None and blends == [(["t"], None), (["v1", "v2"], None), None]
    assert get_blend_and_blend_per_split() == (None, None)


def test_requested_sizes_per_split() -> None:
    assert get_train_valid_test_num_samples(None, 100, 8, 10, 2) == (800, 11 * 2 * 8, 16)
    assert get_train_valid_test_num_samples(1000, 125, 8, 50, 1) == (1000, 3 * 8, 8)
    assert get_train_valid_test_num_samples(None, 10, 8, 5, 2, full_validation=True) == (
        80,
        None,
        16,
    )


def test_config_derives_split_matrix_and_mock_mode() -> None:
    mock = GPTDatasetConfig(random_seed=1, sequence_length=4, eod_id=0)
    assert mock.mock and mock.split == "1,1,1"
    real = GPTDatasetConfig(
        random_seed=1, sequence_length=4, eod_id=0, blend=(["p"], None), split="90,10,0"
    )
    assert not real.mock and real.split_matrix == [(0, 0.9), (0.9, 1.0), None]
    with pytest.raises(ValueError, match="split is required"):
        GPTDatasetConfig(random_seed=1, sequence_length=4, eod_id=0, blend=(["p"], None))
    with pytest.raises(ValueError, match="split cannot be used"):
        GPTDatasetConfig(
            random_seed=1,
            sequence_length=4,
            eod_id=0,
            split="1",
            blend_per_split=[(["p"], None), None, None],
        )
    with pytest.raises(ValueError, match="2 prefixes but 1 weights"):
        GPTDatasetConfig(
            random_seed=1, sequence_length=4, eod_id=0, split="1", blend=(["a", "b"], [1.0])
        )
