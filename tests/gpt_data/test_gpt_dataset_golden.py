"""GPTDataset against the original's own outputs: cache arrays, cache names, first batch."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from gpt_data.blend import get_blend_from_list
from gpt_data.builder import BlendedMegatronDatasetBuilder, get_train_valid_test_num_samples
from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.gpt_dataset import GPTDataset
from gpt_data.samplers import build_pretraining_data_loader

# The two tokenizer identifier forms found in the golden cache (legacy and new tokenizer classes).
LEGACY_NULL_TOKENIZER = {"class": "_NullTokenizer", "tokenizer_path": [None], "vocab_size": "1000"}
NULL_TOKENIZER = {"class": "NullTokenizer", "vocab_size": 1000}


def golden_sizes(args: dict[str, str]) -> tuple[int, int | None, int]:
    return get_train_valid_test_num_samples(
        train_samples=None,
        train_iters=int(args["--train-iters"]),
        global_batch_size=int(args["--global-batch-size"]),
        eval_interval=int(args["--eval-interval"]),
        eval_iters=int(args["--eval-iters"]),
    )


def golden_config(args: dict[str, str], tokenizer: dict, **overrides) -> GPTDatasetConfig:
    fields = dict(
        random_seed=int(args["--seed"]),
        sequence_length=int(args["--seq-length"]),
        blend=get_blend_from_list([args["--data-path"]]),
        split=args["--split"],
        eod_id=int(args["--vocab-size"]),  # the legacy NullTokenizer's eod is its vocab size
        tokenizer_unique_identifiers=tokenizer,
    )
    fields.update(overrides)
    return GPTDatasetConfig(**fields)


def build(golden, config: GPTDatasetConfig, sizes=None) -> list:
    sizes = golden_sizes(golden.args) if sizes is None else sizes
    return BlendedMegatronDatasetBuilder(GPTDataset, sizes, lambda: True, config).build()


def test_requested_sizes_follow_the_training_formula(golden) -> None:
    assert golden_sizes(golden.args) == (80, 0, 0)


@pytest.mark.parametrize("tokenizer", [LEGACY_NULL_TOKENIZER, NULL_TOKENIZER])
def test_index_arrays_and_cache_names_equal_the_golden_cache(
    golden, golden_corpus: str, tokenizer: dict
) -> None:
    train, valid, test = build(golden, golden_config(golden.args, tokenizer))
    assert test is None  # split 90,10,0 has no test range
    written = os.path.join(golden_corpus, "cache", "GPTDataset_indices")  # the default place
    for dataset in (train, valid):
        stem = f"{dataset.unique_description_hash}-GPTDataset-{dataset.index_split.name}"
        golden_description = (golden.cache / f"{stem}-description.txt").read_text()
        assert dataset.unique_description == golden_description
        for name in ("document_index", "sample_index", "shuffle_index"):
            expected = np.load(golden.cache / f"{stem}-{name}.npy")
            ours = getattr(dataset, name)
            assert ours.dtype == expected.dtype
            np.testing.assert_array_equal(ours, expected)
            assert (
                open(os.path.join(written, f"{stem}-{name}.npy"), "rb").read()
                == (golden.cache / f"{stem}-{name}.npy").read_bytes()
            )
    assert len(train) == 561 and len(valid) == 61


def test_eight_sample_request_names_its_own_cache_entry(golden, golden_corpus: str) -> None:
    train, _, _ = build(golden, golden_config(golden.args, LEGACY_NULL_TOKENIZER), sizes=(8, 0, 0))
    stem = "c44460bb404fe43fd8341b73f84d5d6a-GPTDataset-train"
    assert train.unique_description_hash == stem.split("-")[0]
    assert train.unique_description == (golden.cache / f"{stem}-description.txt").read_text()
    for name in ("document_index", "sample_index", "shuffle_index"):
        expected = np.load(golden.cache / f"{stem}-{name}.npy")
        assert getattr(train, name).dtype == expected.dtype
        np.testing.assert_array_equal(getattr(train, name), expected)


@pytest.mark.parametrize(("mmap_bin_files", "num_workers"), [(True, 0), (False, 0), (True, 2)])
def test_first_global_batch_equals_the_originals(
    golden, golden_corpus: str, mmap_bin_files: bool, num_workers: int
) -> None:
    args = golden.args
    config = golden_config(args, LEGACY_NULL_TOKENIZER, mmap_bin_files=mmap_bin_files)
    train, _, _ = build(golden, config)
    loader = build_pretraining_data_loader(
        train,
        0,
        dataloader_type="single",
        micro_batch_size=int(args["--micro-batch-size"]),
        data_parallel_rank=0,
        data_parallel_size=1,
        num_workers=num_workers,
    )
    batches = iter(loader)
    micro = [
        next(batches)
        for _ in range(int(args["--global-batch-size"]) // int(args["--micro-batch-size"]))
    ]
    tokens = torch.cat([m["tokens"] for m in micro])
    labels = torch.cat([m["labels"] for m in micro])
    golden = json.loads((golden.directory / "first_batch.json").read_text())
    assert tokens.tolist() == golden["tokens"]
    assert labels.tolist() == golden["labels"]
    assert micro[0]["attention_mask"].shape == (4, 1, 32, 32)
    assert micro[0]["loss_mask"].dtype == torch.float32 and bool((micro[0]["loss_mask"] == 1).all())
    assert micro[0]["position_ids"].tolist()[0] == list(range(32))


def test_second_build_loads_the_cache_instead_of_rebuilding(golden, golden_corpus: str) -> None:
    config = golden_config(golden.args, LEGACY_NULL_TOKENIZER)
    first, _, _ = build(golden, config)
    again, _, _ = build(golden, config)
    assert first.built_anew_on_cache_miss and not again.built_anew_on_cache_miss
    assert isinstance(again.sample_index, np.memmap)


def test_explicit_cache_path_replaces_the_default_place(
    golden, golden_corpus: str, tmp_path
) -> None:
    cache = tmp_path / "elsewhere"
    config = golden_config(golden.args, LEGACY_NULL_TOKENIZER, path_to_cache=str(cache))
    train, _, _ = build(golden, config)
    assert any(name.startswith(train.unique_description_hash) for name in os.listdir(cache))
    assert not os.path.exists(os.path.join(golden_corpus, "cache"))
