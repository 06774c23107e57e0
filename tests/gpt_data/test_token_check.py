"""check_token_ids: a token id outside the vocabulary stops with one line naming the .bin file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gpt_data import check_token_ids
from gpt_data.blended_dataset import BlendedDataset
from gpt_data.builder import BlendedMegatronDatasetBuilder
from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.gpt_dataset import GPTDataset
from gpt_data.indexed_dataset import IndexedDataset, IndexedDatasetBuilder, IndexedDatasetError
from gpt_data.mock_dataset import MockGPTDataset, MockGPTLowLevelDataset
from gpt_data.splits import Split


def corpus(tmp_path: Path, name: str, documents: list[list[int]], dtype=np.int32) -> str:
    """One sequence per document, written with the builder."""
    prefix = str(tmp_path / name)
    with IndexedDatasetBuilder(prefix + ".bin", dtype=dtype) as builder:
        for document in documents:
            builder.add_item(np.array(document, dtype=np.int64))
            builder.end_document()
        builder.finalize(prefix + ".idx")
    return prefix


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_ids_inside_the_vocabulary_pass(tmp_path: Path) -> None:
    prefix = corpus(tmp_path, "ok", [[0, 5, 9], [], [9, 1]])
    check_token_ids(prefix, 10)
    check_token_ids(IndexedDataset(prefix, mmap=False), 10)


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("chunk_tokens", [1, 3, 1 << 20])
def test_an_id_at_the_vocab_size_names_the_bin_the_id_and_its_sequence(
    tmp_path: Path, mmap: bool, chunk_tokens: int
) -> None:
    # Sequence 2 is empty and shares its pointer with sequence 3, which holds the bad id.
    prefix = corpus(tmp_path, "bad", [[1, 2], [3], [], [4, 10, 5], [10]])
    with pytest.raises(ValueError) as info:
        check_token_ids(IndexedDataset(prefix, mmap=mmap), 10, chunk_tokens=chunk_tokens)
    assert one_line_error(info) == (
        f"{prefix}.bin: token id 10 (sequence 3, token 4) is outside the vocabulary [0, 10); "
        "was the data tokenized with another tokenizer or --vocab-size?"
    )


def test_negative_ids_of_a_signed_dtype_are_rejected(tmp_path: Path) -> None:
    prefix = corpus(tmp_path, "neg", [[1, 2, -3]])
    with pytest.raises(ValueError, match=r"bin: token id -3 \(sequence 0, token 2\)"):
        check_token_ids(prefix, 100)


def test_a_dtype_too_narrow_to_exceed_the_vocab_is_not_scanned(tmp_path: Path) -> None:
    prefix = corpus(tmp_path, "u16", [[65535, 0]], dtype=np.uint16)
    check_token_ids(prefix, 128256)  # every uint16 is a valid Llama-3 id
    with pytest.raises(ValueError, match="token id 65535"):
        check_token_ids(prefix, 50257)


def test_golden_corpus_fits_the_null_tokenizer_vocab_and_not_one_less(golden_dir: Path) -> None:
    prefix = str(golden_dir / "corpus" / "tiny_text_document")
    check_token_ids(prefix, 1001)  # NullTokenizer --vocab-size 1000: ids 0..999, eod 1000
    with pytest.raises(ValueError, match="tiny_text_document.bin: token id 1000 "):
        check_token_ids(prefix, 1000)


def test_blends_of_gpt_datasets_are_checked_through_to_their_files(tmp_path: Path) -> None:
    good = corpus(tmp_path, "good", [[1] * 20] * 10)
    bad = corpus(tmp_path, "bad", [[1] * 20] * 9 + [[1] * 19 + [77]])
    config = GPTDatasetConfig(
        random_seed=1,
        sequence_length=8,
        blend=([good, bad], [0.5, 0.5]),
        split="100,0,0",
        eod_id=1,
        path_to_cache=str(tmp_path / "cache"),
    )
    train, valid, test = BlendedMegatronDatasetBuilder(
        GPTDataset, [10, 0, 0], lambda: True, config
    ).build()
    assert isinstance(train, BlendedDataset)
    check_token_ids([train, valid, test], 78)
    check_token_ids(train.datasets[0], 2)
    with pytest.raises(ValueError, match=r"bad\.bin: token id 77 \(sequence 9, token 199\)"):
        check_token_ids([train, None], 50)


def test_mock_data_has_no_file_to_check() -> None:
    config = GPTDatasetConfig(random_seed=1, sequence_length=16, eod_id=0, vocab_size=5)
    low_level = MockGPTLowLevelDataset(eod_id=0, vocab_size=5)
    mock = MockGPTDataset(low_level, None, np.arange(3, dtype=np.int32), 1, Split.train, config)
    check_token_ids([mock, low_level], 1)


def test_a_missing_prefix_or_a_bad_vocab_size_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexedDatasetError, match="nowhere.idx"):
        check_token_ids(str(tmp_path / "nowhere"), 10)
    with pytest.raises(ValueError, match="vocab_size must be positive"):
        check_token_ids([], 0)


def test_each_bin_is_scanned_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = corpus(tmp_path, "once", [[1, 2, 3]])
    reads: list[int] = []
    original = IndexedDataset.read_tokens

    def counted(self, start, count):
        reads.append(start)
        return original(self, start, count)

    monkeypatch.setattr(IndexedDataset, "read_tokens", counted)
    check_token_ids([prefix, IndexedDataset(prefix), [prefix]], 10)
    assert reads == [0]


def test_read_tokens_crosses_sequences_and_checks_its_range(tmp_path: Path) -> None:
    prefix = str(tmp_path / "flat")
    with IndexedDatasetBuilder(prefix + ".bin", dtype=np.uint16) as builder:
        builder.add_document(np.array([1, 2, 3, 4, 5]), [2, 3])
        builder.finalize(prefix + ".idx")
    for mmap in (True, False):
        dataset = IndexedDataset(prefix, mmap=mmap)
        assert dataset.num_tokens == 5
        assert dataset.read_tokens(1, 3).tolist() == [2, 3, 4]
        with pytest.raises(IndexError, match=r"tokens \[4, 6\) out of range"):
            dataset.read_tokens(4, 2)
