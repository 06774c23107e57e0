"""What a GPTDataset sample holds: token windows, labels, masks, positions, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.gpt_dataset import GPTDataset
from gpt_data.index_cache import IndexCacheError
from gpt_data.indexed_dataset import IndexedDataset
from gpt_data.masks import get_ltor_masks_and_position_ids
from gpt_data.splits import Split

EOD = 999


def config(tmp_path, **overrides) -> GPTDatasetConfig:
    fields = dict(
        random_seed=5,
        sequence_length=8,
        blend=(["unused"], None),
        split="100,0,0",
        eod_id=EOD,
        path_to_cache=str(tmp_path / "cache"),
    )
    fields.update(overrides)
    return GPTDatasetConfig(**fields)


def dataset_over(
    prefix: str, cfg: GPTDatasetConfig, num_samples, split=Split.train, **kwargs
) -> GPTDataset:
    indexed = IndexedDataset(prefix)
    indices = np.arange(len(indexed), dtype=np.int32)
    return GPTDataset(indexed, prefix, indices, num_samples, split, cfg, **kwargs)


def flat_stream(dataset: GPTDataset) -> np.ndarray:
    return np.concatenate([dataset.dataset.get(int(d)) for d in dataset.document_index])


def test_each_sample_is_a_window_of_the_shuffled_stream_overlapping_by_one(
    make_corpus, tmp_path
) -> None:
    dataset = dataset_over(make_corpus("c", [5, 12, 3, 9, 7, 20]), config(tmp_path), 10)
    stream = flat_stream(dataset)
    for i in range(len(dataset)):
        j = int(dataset.shuffle_index[i])
        sample = dataset[i]
        window = stream[j * 8 : j * 8 + 9]
        assert sample["tokens"].tolist() == window[:-1].tolist()
        assert sample["labels"].tolist() == window[1:].tolist()


def test_multi_epoch_request_repeats_every_document(make_corpus, tmp_path) -> None:
    prefix = make_corpus("c", [6, 6, 6, 6])  # 24 tokens: 2 samples of 8 (+1) per epoch
    dataset = dataset_over(prefix, config(tmp_path), 7)
    assert len(dataset.document_index) == 4 * 3  # 7 * 8 + 1 = 57 tokens need 3 epochs
    assert len(dataset) == (72 - 1) // 8 >= 7
    assert all(dataset[i]["tokens"].shape == (8,) for i in range(len(dataset)))


def test_masks_and_positions_reset_at_each_eod() -> None:
    tokens = torch.tensor([4, EOD, 5, 6, EOD, 7])
    mask, loss_mask, positions = get_ltor_masks_and_position_ids(
        tokens, EOD, True, True, True, True
    )
    assert positions.tolist() == [0, 1, 0, 1, 2, 0]
    assert loss_mask.tolist() == [1, 0, 1, 1, 0, 1]
    allowed = (~mask[0]).int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ]


def test_without_resets_the_mask_is_causal_and_positions_count_up() -> None:
    tokens = torch.tensor([4, EOD, 5, 6])
    mask, loss_mask, positions = get_ltor_masks_and_position_ids(
        tokens, EOD, False, False, False, True
    )
    assert positions.tolist() == [0, 1, 2, 3]
    assert loss_mask.tolist() == [1, 1, 1, 1]
    assert mask.dtype == torch.bool and mask.shape == (1, 4, 4)
    assert torch.equal(mask[0], torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1))
    none, _, _ = get_ltor_masks_and_position_ids(tokens, EOD, False, True, False, False)
    assert none is None


def test_dataset_samples_carry_the_configured_masks(make_corpus, tmp_path) -> None:
    cfg = config(tmp_path, reset_position_ids=True, eod_mask_loss=True, create_attention_mask=False)
    dataset = dataset_over(make_corpus("c", [3, 4, 10, 2, 8]), cfg, 4)
    sample = dataset[0]
    assert "attention_mask" not in sample
    eod_at = (sample["tokens"] == EOD).nonzero().flatten().tolist()
    assert all(sample["loss_mask"][i] == 0 for i in eod_at)
    for i in eod_at:
        if i + 1 < 8:
            assert sample["position_ids"][i + 1] == 0


def test_padding_sample_keeps_tokens_but_masks_all_loss(make_corpus, tmp_path) -> None:
    dataset = dataset_over(make_corpus("c", [9, 9, 9]), config(tmp_path), 2)
    padding, first = dataset[None], dataset[0]
    assert torch.equal(padding["tokens"], first["tokens"])
    assert padding["loss_mask"].sum() == 0 and first["loss_mask"].sum() == 8


def test_without_extra_token_the_last_label_is_pad_and_masked(make_corpus, tmp_path) -> None:
    dataset = dataset_over(
        make_corpus("c", [9, 9, 9]), config(tmp_path, add_extra_token_to_sequence=False), 2
    )
    sample = dataset[0]
    assert sample["labels"][-1] == 0 and sample["loss_mask"][-1] == 0
    assert sample["labels"][:-1].tolist() == sample["tokens"][1:].tolist()


def test_kept_partial_validation_sample_is_padded_and_masked(make_corpus, tmp_path) -> None:
    cfg = config(tmp_path, drop_last_partial_validation_sequence=False)
    dataset = dataset_over(make_corpus("c", [7, 6]), cfg, None, split=Split.valid)
    # 13 tokens: one full sample of 9, then a partial one of 5 padded with -1 -> 0, loss masked.
    assert len(dataset) == 2
    last = dataset[int(np.argmax(dataset.shuffle_index == 1))]
    assert last["loss_mask"].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert last["labels"][4:].tolist() == [0, 0, 0, 0]


def test_a_rank_that_may_not_build_fails_clearly_on_a_missing_cache(make_corpus, tmp_path) -> None:
    prefix = make_corpus("c", [9, 9, 9])
    with pytest.raises(IndexCacheError, match="description.txt"):
        dataset_over(prefix, config(tmp_path), 2, build_on_this_rank=False)
    built = dataset_over(prefix, config(tmp_path), 2)
    loaded = dataset_over(prefix, config(tmp_path), 2, build_on_this_rank=False)
    np.testing.assert_array_equal(built.sample_index, loaded.sample_index)


def test_mask_and_loss_edits_do_not_leak_between_samples(make_corpus, tmp_path) -> None:
    dataset = dataset_over(make_corpus("c", [9, 9, 9]), config(tmp_path), 2)
    dataset[None]
    assert dataset[0]["loss_mask"].sum() == 8


@pytest.mark.parametrize(("num_samples", "separate"), [(14, True), (21, False)])
def test_two_epoch_indices_worked_by_hand(
    make_corpus, tmp_path, num_samples: int, separate: bool
) -> None:
    # 5 documents of 10 tokens: T = 50 per epoch, S = 4, so 12 samples fit one epoch
    # ((50 - 1) // 4). n * 4 + 1 > 50 needs E = 2 epochs, 12 samples before the last one.
    # n = 14 takes 2 from the last epoch, fewer than int(0.8 * 12) = 9: shuffled on its own;
    # n = 21 takes 9, not fewer: both epochs are shuffled together.
    dataset = dataset_over(
        make_corpus("c", [10] * 5), config(tmp_path, random_seed=5, sequence_length=4), num_samples
    )
    random_state = np.random.RandomState(5)
    if separate:
        first, last = np.arange(5, dtype=np.int32), np.arange(5, dtype=np.int32)
        random_state.shuffle(first)
        random_state.shuffle(last)
        documents = np.concatenate((first, last))
        before, after = np.arange(12, dtype=np.uint32), np.arange(12, 24, dtype=np.uint32)
        random_state.shuffle(before)
        random_state.shuffle(after)
        shuffle = np.concatenate((before, after))
    else:
        documents = np.tile(np.arange(5, dtype=np.int32), 2)
        random_state.shuffle(documents)
        shuffle = np.arange(24, dtype=np.uint32)
        random_state.shuffle(shuffle)
    np.testing.assert_array_equal(dataset.document_index, documents)
    np.testing.assert_array_equal(dataset.shuffle_index, shuffle)
    # (100 - 1) // 4 = 24 samples; sample j starts at flat token 4j: document 4j // 10, offset
    # 4j % 10, and ends at 4j + 4, the first token of sample j + 1.
    assert dataset.sample_index[:6].tolist() == [[0, 0], [0, 4], [0, 8], [1, 2], [1, 6], [2, 0]]
    assert dataset.sample_index.tolist() == [[4 * j // 10, 4 * j % 10] for j in range(25)]
    stream = flat_stream(dataset)
    for i in (0, 11, 12, 23):
        j = int(shuffle[i])
        assert dataset[i]["tokens"].tolist() == stream[4 * j : 4 * j + 4].tolist()
        assert dataset[i]["labels"].tolist() == stream[4 * j + 1 : 4 * j + 5].tolist()


def test_reset_attention_mask_reaches_the_dataset_sample(make_corpus, tmp_path) -> None:
    cfg = config(tmp_path, reset_attention_mask=True, reset_position_ids=True)
    dataset = dataset_over(make_corpus("c", [3, 3, 3, 3, 3, 3]), cfg, 2)
    sample = dataset[0]
    tokens = sample["tokens"]
    expected, _, positions = get_ltor_masks_and_position_ids(tokens, EOD, True, True, False, True)
    assert bool((tokens == EOD).any())  # documents of 3 tokens: every window crosses an EOD
    assert torch.equal(sample["attention_mask"], expected)
    assert torch.equal(sample["position_ids"], positions)
    first_eod = int((tokens == EOD).nonzero()[0])
    if first_eod + 1 < 8:
        assert bool(sample["attention_mask"][0, first_eod + 1, : first_eod + 1].all())
    assert sample["loss_mask"].sum() == 8  # eod_mask_loss is off
