"""The .idx/.bin format: byte layout from the spec, the golden corpus, merging, and bad files."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from gpt_data.indexed_dataset import (
    IndexedDataset,
    IndexedDatasetBuilder,
    IndexedDatasetError,
    optimal_dtype,
)


def spec_index_bytes(
    code: int, itemsize: int, lengths: list[int], documents: list[int], modes=None
) -> bytes:
    """An .idx image written field by field from the format table, independent of the library."""
    out = b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", code)
    out += struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(documents))
    out += struct.pack(f"<{len(lengths)}i", *lengths)
    pointers, position = [], 0
    for length in lengths:
        pointers.append(position)
        position += length * itemsize
    out += struct.pack(f"<{len(pointers)}q", *pointers)
    out += struct.pack(f"<{len(documents)}q", *documents)
    if modes is not None:
        out += struct.pack(f"<{len(modes)}b", *modes)
    return out


def build_sample(prefix: Path, dtype=np.uint16) -> None:
    with IndexedDatasetBuilder(str(prefix) + ".bin", dtype=dtype) as builder:
        builder.add_item(np.array([5, 6, 7]))  # document 0: two sequences
        builder.add_item(np.array([8]))
        builder.end_document()
        builder.add_document(np.array([9, 10, 11, 12]), [1, 3])  # document 1: two sentences
        builder.add_document(np.array([], dtype=np.int64), [])  # an empty document
        builder.add_item(np.array([13, 14]))
        builder.end_document()
        builder.finalize(str(prefix) + ".idx")


def test_builder_writes_idx_and_bin_byte_identical_to_the_spec(tmp_path: Path) -> None:
    build_sample(tmp_path / "data")
    expected_idx = spec_index_bytes(8, 2, [3, 1, 1, 3, 2], [0, 2, 4, 4, 5])
    assert (tmp_path / "data.idx").read_bytes() == expected_idx
    assert (tmp_path / "data.bin").read_bytes() == struct.pack("<10H", *range(5, 15))
    assert sorted(os.listdir(tmp_path)) == ["data.bin", "data.idx"]


def test_multimodal_modes_follow_the_document_indices(tmp_path: Path) -> None:
    prefix = str(tmp_path / "mm")
    with IndexedDatasetBuilder(prefix + ".bin", dtype=np.int32, multimodal=True) as builder:
        builder.add_item(np.array([1, 2]), mode=0)
        builder.add_item(np.array([3]), mode=1)
        builder.end_document()
        builder.finalize(prefix + ".idx")
    assert Path(prefix + ".idx").read_bytes() == spec_index_bytes(
        4, 4, [2, 1], [0, 2], modes=[0, 1]
    )
    dataset = IndexedDataset(prefix, multimodal=True)
    tokens, mode = dataset[1]
    assert tokens.tolist() == [3] and mode == 1


def test_reader_returns_sequences_slices_and_partial_reads(tmp_path: Path) -> None:
    build_sample(tmp_path / "data")
    for mmap in (True, False):
        dataset = IndexedDataset(str(tmp_path / "data"), mmap=mmap)
        assert len(dataset) == 5 and dataset.dtype == np.uint16
        assert dataset.document_indices.tolist() == [0, 2, 4, 4, 5]
        assert dataset[0].tolist() == [5, 6, 7]
        assert dataset.get(3, offset=1, length=2).tolist() == [11, 12]
        assert dataset.get(0, offset=1).tolist() == [6, 7]
        assert [s.tolist() for s in dataset[1:4]] == [[8], [9], [10, 11, 12]]
        with pytest.raises(IndexError):
            dataset.get(0, offset=2, length=2)


def test_golden_corpus_reads_as_200_uint16_documents_ending_in_eod(golden_dir: Path) -> None:
    prefix = str(golden_dir / "corpus" / "tiny_text_document")
    dataset = IndexedDataset(prefix)
    assert len(dataset) == 200 and dataset.dtype == np.uint16
    assert dataset.document_indices.tolist() == list(range(201))
    assert all(dataset[i][-1] == 1000 for i in range(200))
    assert all(int(dataset[i][:-1].max(initial=0)) < 1000 for i in range(200))
    total = int(dataset.sequence_lengths.sum())
    assert os.path.getsize(prefix + ".bin") == 2 * total


def test_add_index_merges_byte_identically_to_one_pass(tmp_path: Path) -> None:
    parts = [[np.array([1, 2, 3]), np.array([4])], [np.array([5, 6]), np.array([7, 8, 9])]]
    for i, documents in enumerate(parts):
        with IndexedDatasetBuilder(str(tmp_path / f"part{i}.bin"), dtype=np.uint16) as builder:
            for document in documents:
                builder.add_item(document)
                builder.end_document()
            builder.finalize(str(tmp_path / f"part{i}.idx"))
    with IndexedDatasetBuilder(str(tmp_path / "merged.bin"), dtype=np.uint16) as builder:
        for i in range(2):
            builder.add_index(str(tmp_path / f"part{i}"))
        builder.finalize(str(tmp_path / "merged.idx"))
    with IndexedDatasetBuilder(str(tmp_path / "whole.bin"), dtype=np.uint16) as builder:
        for document in parts[0] + parts[1]:
            builder.add_item(document)
            builder.end_document()
        builder.finalize(str(tmp_path / "whole.idx"))
    for suffix in (".idx", ".bin"):
        assert (tmp_path / f"merged{suffix}").read_bytes() == (
            tmp_path / f"whole{suffix}"
        ).read_bytes()


def test_add_index_refuses_a_different_dtype(tmp_path: Path) -> None:
    build_sample(tmp_path / "small")
    with IndexedDatasetBuilder(str(tmp_path / "big.bin"), dtype=np.int32) as builder:
        with pytest.raises(IndexedDatasetError, match="small.idx"):
            builder.add_index(str(tmp_path / "small"))
        builder.abort()


def test_add_documents_writes_one_sequence_per_document(tmp_path: Path) -> None:
    prefix = str(tmp_path / "batch")
    with IndexedDatasetBuilder(prefix + ".bin", dtype=np.uint16) as builder:
        builder.add_documents(np.array([1, 2, 3, 4, 5, 6]), [2, 0, 4])
        builder.finalize(prefix + ".idx")
    dataset = IndexedDataset(prefix)
    assert dataset.sequence_lengths.tolist() == [2, 0, 4]
    assert dataset.document_indices.tolist() == [0, 1, 2, 3]


def test_interrupted_build_leaves_no_dataset_behind(tmp_path: Path) -> None:
    prefix = str(tmp_path / "broken")
    with pytest.raises(RuntimeError, match="boom"):
        with IndexedDatasetBuilder(prefix + ".bin", dtype=np.uint16) as builder:
            builder.add_item(np.array([1, 2]))
            assert not IndexedDataset.exists(prefix)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_rebuilding_over_an_old_dataset_never_pairs_new_bin_with_old_idx(tmp_path: Path) -> None:
    build_sample(tmp_path / "data")
    builder = IndexedDatasetBuilder(str(tmp_path / "data.bin"), dtype=np.uint16)
    builder.add_item(np.array([42]))
    builder.end_document()
    # Not finalized yet: the old pair is still the one on disk, untouched.
    assert IndexedDataset(str(tmp_path / "data"))[0].tolist() == [5, 6, 7]
    builder.finalize(str(tmp_path / "data.idx"))
    assert IndexedDataset(str(tmp_path / "data"))[0].tolist() == [42]


def test_token_ids_that_do_not_fit_the_dtype_are_rejected(tmp_path: Path) -> None:
    with IndexedDatasetBuilder(str(tmp_path / "x.bin"), dtype=np.uint16) as builder:
        with pytest.raises(ValueError, match="70000"):
            builder.add_item(np.array([1, 70000]))
        builder.abort()


def test_document_whose_lengths_do_not_sum_to_its_tokens_is_rejected(tmp_path: Path) -> None:
    with IndexedDatasetBuilder(str(tmp_path / "x.bin"), dtype=np.uint16) as builder:
        with pytest.raises(ValueError, match="sum to 2"):
            builder.add_document(np.array([1, 2, 3]), [1, 1])
        builder.abort()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda idx, bin_: idx.write_bytes(b"NOTANIDX!" + idx.read_bytes()[9:]), "bad magic"),
        (lambda idx, bin_: idx.write_bytes(idx.read_bytes()[:-5]), "truncated index"),
        (lambda idx, bin_: idx.write_bytes(idx.read_bytes()[:20]), "truncated index"),
        (lambda idx, bin_: bin_.write_bytes(bin_.read_bytes()[:-2]), "truncated data"),
        (
            lambda idx, bin_: idx.write_bytes(
                idx.read_bytes()[:9] + struct.pack("<Q", 2) + idx.read_bytes()[17:]
            ),
            "version 2",
        ),
        (
            lambda idx, bin_: idx.write_bytes(
                idx.read_bytes()[:17] + b"\x09" + idx.read_bytes()[18:]
            ),
            "dtype code 9",
        ),
        (
            lambda idx, bin_: idx.write_bytes(
                idx.read_bytes()[:54] + struct.pack("<q", 2) + idx.read_bytes()[62:]
            ),
            "first sequence starts at byte 2",
        ),
        (
            lambda idx, bin_: idx.write_bytes(idx.read_bytes()[:-8] + struct.pack("<q", 4)),
            "document indices run from 0 to 4, expected 0 to 5",
        ),
        (lambda idx, bin_: idx.unlink(), "not found"),
        (lambda idx, bin_: bin_.unlink(), "not found"),
    ],
)
def test_damaged_files_fail_with_one_line_naming_the_file(
    tmp_path: Path, damage, message: str
) -> None:
    build_sample(tmp_path / "data")
    damage(tmp_path / "data.idx", tmp_path / "data.bin")
    with pytest.raises(IndexedDatasetError, match=message) as info:
        IndexedDataset(str(tmp_path / "data"))
    text = str(info.value)
    assert "\n" not in text and str(tmp_path / "data") in text


def test_optimal_dtype_switches_to_int32_at_65500() -> None:
    assert optimal_dtype(65499) == np.uint16
    assert optimal_dtype(65500) == np.int32
    assert optimal_dtype(None) == np.int32


def test_dataset_pickles_by_path_and_reopens(tmp_path: Path) -> None:
    build_sample(tmp_path / "data")
    dataset = pickle.loads(pickle.dumps(IndexedDataset(str(tmp_path / "data"), mmap=False)))
    assert dataset.mmap is False and dataset[4].tolist() == [13, 14]
