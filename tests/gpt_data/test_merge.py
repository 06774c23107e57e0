"""Merging indexed datasets (add_index, tools/merge_datasets.py): byte-identical to one pass."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from gpt_data import find_dataset_prefixes, merge_datasets, merge_directory
from gpt_data.indexed_dataset import IndexedDataset, IndexedDatasetBuilder, IndexedDatasetError

# Documents as lists of sentences; one document is empty, one has an empty sentence.
PARTS = [
    [[[1, 2], [3]], [[4, 5, 6]]],
    [[], [[7], [], [8, 9]]],
    [[[10, 11, 12, 13]]],
]


def write(prefix: str, documents, dtype=np.uint16, multimodal: bool = False) -> str:
    with IndexedDatasetBuilder(prefix + ".bin", dtype=dtype, multimodal=multimodal) as builder:
        for sentences in documents:
            tokens = [t for sentence in sentences for t in sentence]
            modes = [len(s) % 2 for s in sentences] if multimodal else None
            builder.add_document(
                np.array(tokens, dtype=np.int64), [len(s) for s in sentences], modes
            )
        builder.finalize(prefix + ".idx")
    return prefix


def same_files(a: str, b: str) -> bool:
    return all(Path(a + s).read_bytes() == Path(b + s).read_bytes() for s in (".idx", ".bin"))


@pytest.mark.parametrize("multimodal", [False, True])
def test_merging_sentence_level_parts_equals_writing_them_in_one_pass(
    tmp_path: Path, multimodal: bool
) -> None:
    parts = [
        write(str(tmp_path / f"part{i}"), docs, multimodal=multimodal)
        for i, docs in enumerate(PARTS)
    ]
    merge_datasets(parts, str(tmp_path / "merged"), multimodal=multimodal)
    whole = write(
        str(tmp_path / "whole"), [d for docs in PARTS for d in docs], multimodal=multimodal
    )
    assert same_files(str(tmp_path / "merged"), whole)
    merged = IndexedDataset(str(tmp_path / "merged"), multimodal=multimodal)
    # Boundaries of later parts are shifted by the sequences before them.
    assert merged.document_indices.tolist() == [0, 2, 3, 3, 6, 7]
    last = merged[6][0] if multimodal else merged[6]
    assert last.tolist() == [10, 11, 12, 13]
    if multimodal:
        assert merged.sequence_modes.tolist() == [0, 1, 1, 1, 0, 0, 0]


def test_a_directory_is_merged_in_sorted_order_ignoring_other_files(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    for name, docs in zip(["b_01", "a_10", "a_02"], PARTS):
        write(str(shards / name), docs)
    (shards / "README.txt").write_text("not a dataset")
    (shards / ".x.bin.partial").write_bytes(b"unfinished")
    assert [os.path.basename(p) for p in find_dataset_prefixes(str(shards))] == [
        "a_02",
        "a_10",
        "b_01",
    ]
    inputs = merge_directory(str(shards), str(tmp_path / "merged"))
    assert len(inputs) == 3
    expected = write(str(tmp_path / "expected"), PARTS[2] + PARTS[1] + PARTS[0])
    assert same_files(str(tmp_path / "merged"), expected)


def test_a_bin_without_its_idx_is_named(tmp_path: Path) -> None:
    write(str(tmp_path / "ok"), PARTS[0])
    (tmp_path / "lonely.bin").write_bytes(b"\x00\x00")
    with pytest.raises(IndexedDatasetError, match="not found: .*lonely.idx$"):
        find_dataset_prefixes(str(tmp_path))


def test_failed_merges_leave_no_output(tmp_path: Path) -> None:
    small = write(str(tmp_path / "small"), PARTS[0], dtype=np.uint16)
    wide = write(str(tmp_path / "wide"), PARTS[1], dtype=np.int32)
    out = str(tmp_path / "out" / "merged")
    os.mkdir(tmp_path / "out")
    with pytest.raises(IndexedDatasetError, match=r"wide\.idx: dtype int32 != uint16"):
        merge_datasets([small, wide], out)
    assert os.listdir(tmp_path / "out") == []
    with pytest.raises(IndexedDatasetError, match="into itself"):
        merge_datasets([small], small)
    with pytest.raises(IndexedDatasetError, match="no input datasets"):
        merge_datasets([], out)
    with pytest.raises(IndexedDatasetError, match="does not exist"):
        merge_datasets([small], str(tmp_path / "missing_dir" / "x"))
