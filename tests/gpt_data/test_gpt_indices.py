"""Document, sample and shuffle indices: hand-computed cases and a step-by-step oracle."""

from __future__ import annotations

import numpy as np
import pytest
from gpt_data.gpt_indices import (
    build_document_index,
    build_gpt_indices,
    build_sample_index,
    build_shuffle_index,
    count_samples,
    plan_epochs,
)


def walk_sample_index(
    lengths, document_index, seq_length, num_epochs, tokens_per_epoch, drop_last, extra
):
    """The sample index by walking the documents one at a time, as the original's helper does."""
    total = num_epochs * tokens_per_epoch
    if drop_last:
        num_samples = (total - extra) // seq_length
    else:
        num_samples = int(np.ceil(np.float32(total - extra) / np.float32(seq_length)))
    rows = [(0, 0)]
    position, offset = 0, 0
    while len(rows) <= num_samples:
        remaining = seq_length + extra
        while remaining != 0:
            available = int(lengths[document_index[position]]) - offset
            remaining -= available
            if remaining <= 0:
                offset += remaining + available - extra
                remaining = 0
            elif position == len(document_index) - 1:
                offset = int(lengths[document_index[position]]) - extra
                break
            else:
                position += 1
                offset = 0
        rows.append((position, offset))
    return np.array(rows)


def test_sample_index_of_a_hand_example_overlaps_by_one_token() -> None:
    # Documents of 5, 3 and 4 tokens; samples of 4 (+1) tokens: flat [0, 5) and [4, 9).
    lengths = np.array([5, 3, 4], dtype=np.int32)
    index = build_sample_index(lengths, np.array([0, 1, 2], dtype=np.int32), 4, 1, 12)
    assert index.tolist() == [[0, 0], [0, 4], [2, 0]]
    assert index.dtype == np.int32


def test_sample_index_without_extra_token_ends_inside_a_document() -> None:
    lengths = np.array([4, 4], dtype=np.int32)
    index = build_sample_index(lengths, np.array([0, 1], dtype=np.int32), 4, 1, 8, True, False)
    assert index.tolist() == [[0, 0], [0, 4], [1, 4]]


def test_kept_partial_last_sample_points_at_the_last_document() -> None:
    lengths = np.array([5, 3], dtype=np.int32)
    index = build_sample_index(lengths, np.array([1, 0], dtype=np.int32), 4, 1, 8, False, True)
    # ceil((8 - 1) / 4) = 2 samples; the second runs past the data and ends in document 0.
    assert index.tolist() == [[0, 0], [1, 1], [1, 4]]


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_sample_index_equals_the_document_walk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 40, size=60).astype(np.int32)
    lengths[rng.integers(0, 60, size=5)] = 0  # empty sequences appear in real data
    documents = np.arange(10, 60, dtype=np.int32)
    tokens = int(lengths[documents].sum())
    for epochs in (1, 3):
        document_index = np.tile(documents, epochs)
        rng.shuffle(document_index)
        for seq_length in (2, 7, 16):
            for drop_last in (True, False):
                for extra in (0, 1):
                    got = build_sample_index(
                        lengths, document_index, seq_length, epochs, tokens, drop_last, bool(extra)
                    )
                    want = walk_sample_index(
                        lengths, document_index, seq_length, epochs, tokens, drop_last, extra
                    )
                    np.testing.assert_array_equal(got, want)


def test_count_samples_keeps_the_partial_sample_with_float32_ceil() -> None:
    assert count_samples(101, 10, 1, drop_last=True) == 10
    assert count_samples(102, 10, 1, drop_last=False) == 11
    assert count_samples(101, 10, 1, drop_last=False) == 10


def test_epoch_plan_separates_a_small_last_epoch() -> None:
    # 100 tokens per epoch, S = 10: 9 samples per epoch, 9 before the last of 2 epochs.
    plan = plan_epochs(100, 12, 10, 1)  # 3 from the last epoch < int(0.8 * 9) = 7
    assert (plan.num_epochs, plan.separate_final_epoch, plan.num_samples_sans_final_epoch) == (
        2,
        True,
        9,
    )
    plan = plan_epochs(100, 17, 10, 1)  # 8 from the last epoch: shuffled with the rest
    assert (plan.num_epochs, plan.separate_final_epoch) == (2, False)
    assert plan_epochs(100, 9, 10, 1).num_epochs == 1  # 9 * 10 + 1 = 91 <= 100
    assert plan_epochs(100, 10, 10, 1).num_epochs == 2  # 101 > 100
    assert plan_epochs(100, None, 10, 1).num_epochs == 1


def test_separated_last_epoch_is_shuffled_on_its_own() -> None:
    documents = np.arange(5, dtype=np.int32)
    got = build_document_index(documents, 3, np.random.RandomState(7), True)
    random_state = np.random.RandomState(7)
    first = np.tile(documents, 2)
    random_state.shuffle(first)
    last = documents.copy()
    random_state.shuffle(last)
    np.testing.assert_array_equal(got, np.concatenate((first, last)))
    assert sorted(got[-5:].tolist()) == documents.tolist()


def test_multi_epoch_indices_cover_every_document_once_per_epoch() -> None:
    lengths = np.full(20, 10, dtype=np.int32)
    documents = np.arange(20, dtype=np.int32)
    # 200 tokens per epoch, 19 samples of 10 per epoch; 50 samples need 3 epochs.
    document_index, sample_index, shuffle_index = build_gpt_indices(
        lengths, documents, 50, 10, 1234
    )
    assert len(document_index) == 60
    assert np.bincount(document_index).tolist() == [3] * 20
    assert len(sample_index) - 1 == (600 - 1) // 10
    # 50 - 39 = 11 from the last epoch, not below int(0.8 * 19) = 15: separated.
    sans = (2 * 200 - 1) // 10
    assert sorted(shuffle_index[:sans].tolist()) == list(range(sans))
    assert sorted(shuffle_index[sans:].tolist()) == list(range(sans, 59))
    assert sorted(document_index[40:].tolist()) == list(range(20))


def test_shuffle_index_is_uint32_and_reproducible() -> None:
    a = build_shuffle_index(10, 10, np.random.RandomState(3))
    b = build_shuffle_index(10, 10, np.random.RandomState(3))
    assert a.dtype == np.uint32 and a.tolist() == b.tolist()
    assert sorted(a.tolist()) == list(range(10))


def test_empty_split_is_an_error_not_a_hang() -> None:
    with pytest.raises(ValueError, match="no tokens"):
        build_gpt_indices(np.array([3, 4], dtype=np.int32), np.array([], dtype=np.int32), 5, 2, 1)
