"""Blending: the greedy index order, per-dataset sizes, the builder's cases and its rank protocol."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from gpt_data.blended_dataset import BlendedDataset
from gpt_data.blending import build_blending_indices, build_exhaustive_blending_indices
from gpt_data.builder import BlendedMegatronDatasetBuilder, get_size_per_split_per_dataset
from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.gpt_dataset import GPTDataset

EOD = 999


def test_blending_order_of_three_datasets_by_hand() -> None:
    # Step t picks argmax_k w_k * max(t, 1) - count_k (worked through by hand).
    dataset_index, sample_index = build_blending_indices([0.5, 0.3, 0.2], 10)
    assert dataset_index.tolist() == [0, 1, 2, 0, 1, 0, 2, 0, 1, 0]
    assert sample_index.tolist() == [0, 0, 0, 1, 1, 2, 1, 3, 2, 4]
    assert dataset_index.dtype == np.int16 and sample_index.dtype == np.int64


def test_blending_ties_go_to_the_lowest_index() -> None:
    dataset_index, _ = build_blending_indices([0.5, 0.5], 4)
    assert dataset_index.tolist() == [0, 1, 0, 1]


def test_exhaustive_blending_takes_every_sample_once() -> None:
    dataset_index, sample_index = build_exhaustive_blending_indices([3, 1])
    assert dataset_index.tolist() == [0, 1, 0, 0]
    assert sample_index.tolist() == [0, 0, 1, 2]


def test_blend_follows_the_weights_in_every_prefix() -> None:
    weights = [0.6, 0.25, 0.15]
    dataset_index, _ = build_blending_indices(weights, 2000)
    for t in (100, 1000, 2000):
        counts = np.bincount(dataset_index[:t], minlength=3)
        assert np.all(np.abs(counts - np.array(weights) * t) <= 1.0)


def test_sizes_per_dataset_use_two_ceilings_and_the_surplus() -> None:
    # Targets ceil(100 * w); built sizes ceil(target * 1.005).
    assert get_size_per_split_per_dataset([0.3, 0.7], [100, 10, 0]) == [[30, 3, 0], [70, 7, 0]]
    assert get_size_per_split_per_dataset([0.3, 0.7], [100, 10, 0], 0.005) == [
        [31, 4, 0],
        [71, 8, 0],
    ]


def corpus_config(tmp_path, **fields) -> GPTDatasetConfig:
    base = dict(random_seed=3, sequence_length=8, eod_id=EOD, path_to_cache=str(tmp_path / "cache"))
    base.update(fields)
    return GPTDatasetConfig(**base)


def test_weighted_blend_builds_children_with_surplus_and_blends_the_target(
    make_corpus, tmp_path
) -> None:
    a = make_corpus("a", [20] * 40)
    b = make_corpus("b", [20] * 40, first_token=100)
    cfg = corpus_config(tmp_path, blend=([a, b], [0.3, 0.7]), split="100,0,0")
    train, valid, test = BlendedMegatronDatasetBuilder(
        GPTDataset, [100, None, None], lambda: True, cfg
    ).build()
    assert valid is None and test is None
    assert [child.num_samples for child in train.datasets] == [31, 71]
    assert len(train) == 100 and train.weights == [0.3, 0.7]
    assert np.bincount(train.dataset_index).tolist() == [30, 70]
    sample = train[0]  # t = 0: 0.7 * 1 - 0 beats 0.3 * 1 - 0
    assert sample["dataset_id"] == 1
    assert sample["tokens"].tolist() == train.datasets[1][0]["tokens"].tolist()


def test_blend_cache_files_are_named_by_the_blend_description(make_corpus, tmp_path) -> None:
    a, b = make_corpus("a", [20] * 30), make_corpus("b", [20] * 30)
    cfg = corpus_config(tmp_path, blend=([a, b], [1.0, 3.0]), split="100,0,0")
    train = BlendedMegatronDatasetBuilder(GPTDataset, [40, 0, 0], lambda: True, cfg).build()[0]
    stem = f"{train.unique_description_hash}-BlendedDataset-train"
    names = set(os.listdir(tmp_path / "cache"))
    assert {
        f"{stem}-description.txt",
        f"{stem}-dataset_index.npy",
        f"{stem}-dataset_sample_index.npy",
    } <= names
    description = json.loads((tmp_path / "cache" / f"{stem}-description.txt").read_text())
    assert list(description) == ["class", "datasets", "split", "weights", "size"]
    assert description["weights"] == [0.25, 0.75] and description["size"] == 40
    assert [d["num_samples"] for d in description["datasets"]] == [11, 31]
    again = BlendedMegatronDatasetBuilder(GPTDataset, [40, 0, 0], lambda: True, cfg).build()[0]
    assert isinstance(again.dataset_index, np.memmap)
    np.testing.assert_array_equal(again.dataset_index, train.dataset_index)


def test_unweighted_prefixes_are_weighed_by_their_lengths(make_corpus, tmp_path) -> None:
    a, b = make_corpus("a", [20] * 10), make_corpus("b", [20] * 30)
    cfg = corpus_config(tmp_path, blend=([a, b], None), split="100,0,0")
    train = BlendedMegatronDatasetBuilder(GPTDataset, [50, 0, 0], lambda: True, cfg).build()[0]
    lengths = [len(child) for child in train.datasets]
    assert lengths == [(200 - 1) // 8, (600 - 1) // 8]
    assert len(train) == 50 and train.weights == pytest.approx([24 / 98, 74 / 98])


def test_per_split_blends_with_multiple_validation_sets(make_corpus, tmp_path) -> None:
    a, b, c = (make_corpus(name, [20] * 10) for name in "abc")
    cfg = corpus_config(
        tmp_path,
        blend_per_split=[([a], None), ([b, c], None), None],
        multiple_validation_sets=True,
        full_validation=True,
    )
    train, valid, test = BlendedMegatronDatasetBuilder(
        GPTDataset, [5, None, 0], lambda: True, cfg
    ).build()
    assert isinstance(train, GPTDataset) and test is None
    assert [d.dataset_path for d in valid] == [b, c]
    description = json.loads(train.unique_description)
    assert description["split"] is None and description["split_matrix"] is None


def test_per_split_unweighted_blend_without_size_is_exhaustive(make_corpus, tmp_path) -> None:
    a, b = make_corpus("a", [20] * 10), make_corpus("b", [20] * 5)
    cfg = corpus_config(
        tmp_path, blend_per_split=[([a], None), ([a, b], None), None], full_validation=True
    )
    valid = BlendedMegatronDatasetBuilder(GPTDataset, [5, None, 0], lambda: True, cfg).build()[1]
    assert valid.size is None and len(valid) == 24 + 12
    assert np.bincount(valid.dataset_index).tolist() == [24, 12]


def test_weights_without_a_size_are_rejected(make_corpus, tmp_path) -> None:
    a, b = make_corpus("a", [20] * 10), make_corpus("b", [20] * 10)
    cfg = corpus_config(tmp_path, blend=([a, b], [1.0, 1.0]), split="90,10,0")
    with pytest.raises(ValueError, match="valid split has blend weights but no requested size"):
        BlendedMegatronDatasetBuilder(GPTDataset, [10, None, 0], lambda: True, cfg)


def test_oversampling_a_child_raises_index_error(make_corpus, tmp_path) -> None:
    a, b = make_corpus("a", [20] * 4), make_corpus("b", [20] * 4)
    cfg = corpus_config(tmp_path, blend=([a, b], None), split="100,0,0")
    children = BlendedMegatronDatasetBuilder(
        GPTDataset, [None, 0, 0], lambda: True, cfg
    )._build_mid_level_parallel([a, b], cfg.split_matrix, [[None] * 3, [None] * 3])[0]
    with pytest.raises(IndexError, match="mid_level_dataset_surplus"):
        BlendedDataset(children, [0.9, 0.1], 40, cfg)


def test_rank_zero_builds_and_other_ranks_read_its_caches(make_corpus, tmp_path) -> None:
    a, b = make_corpus("a", [20] * 20), make_corpus("b", [20] * 20)
    cfg = corpus_config(tmp_path, blend=([a, b], [0.5, 0.5]), split="80,20,0")
    barrier = threading.Barrier(3, timeout=60)
    results: dict[int, list] = {}

    def run(rank: int) -> None:
        builder = BlendedMegatronDatasetBuilder(
            GPTDataset, [30, 10, 0], lambda: rank != 2, cfg, rank=rank, barrier=barrier.wait
        )
        results[rank] = builder.build()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [0, 1, 2]
    assert results[2] == [None, None, None]
    for split in (0, 1):
        zero, one = results[0][split], results[1][split]
        assert all(child.built_anew_on_cache_miss for child in zero.datasets)
        assert not any(child.built_anew_on_cache_miss for child in one.datasets)
        np.testing.assert_array_equal(zero.dataset_index, one.dataset_index)
        assert zero[3]["tokens"].tolist() == one[3]["tokens"].tolist()


def test_builder_threads_build_the_same_blend(make_corpus, tmp_path, monkeypatch) -> None:
    from gpt_data import builder as builder_module

    prefixes = [make_corpus(name, [20] * 30, first_token=i * 50) for i, name in enumerate("abc")]
    pools: list[int] = []
    real_pool = builder_module.ThreadPoolExecutor

    def recording_pool(max_workers: int):
        pools.append(max_workers)
        return real_pool(max_workers=max_workers)

    monkeypatch.setattr(builder_module, "ThreadPoolExecutor", recording_pool)
    built = []
    for threads in (1, 3):
        cfg = corpus_config(
            tmp_path,
            blend=(prefixes, [0.2, 0.3, 0.5]),
            split="90,10,0",
            num_dataset_builder_threads=threads,
            path_to_cache=str(tmp_path / f"cache{threads}"),
        )
        built.append(
            BlendedMegatronDatasetBuilder(GPTDataset, [40, 8, 0], lambda: True, cfg).build()
        )
    assert pools == [1, 3]
    for one, three in zip(built[0][:2], built[1][:2]):
        np.testing.assert_array_equal(one.dataset_index, three.dataset_index)
        assert [d.dataset_path for d in one.datasets] == prefixes
        for a, b in zip(one.datasets, three.datasets):
            np.testing.assert_array_equal(a.shuffle_index, b.shuffle_index)
        assert one[5]["tokens"].tolist() == three[5]["tokens"].tolist()


def test_a_missing_prefix_in_a_blend_stops_with_its_name(make_corpus, tmp_path) -> None:
    from gpt_data.indexed_dataset import IndexedDatasetError

    a = make_corpus("a", [20] * 10)
    missing = str(tmp_path / "not_there")
    cfg = corpus_config(tmp_path, blend=([a, missing], [0.5, 0.5]), split="100,0,0")
    with pytest.raises(
        IndexedDatasetError, match=f"^indexed dataset file not found: {missing}.idx$"
    ):
        BlendedMegatronDatasetBuilder(GPTDataset, [10, 0, 0], lambda: True, cfg).build()
