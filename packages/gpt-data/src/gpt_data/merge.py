"""Merge several `.idx/.bin` pairs into one, as the original's tools/merge_datasets.py does.

The merged dataset is the inputs one after the other: their sequences, document boundaries
(shifted) and token bytes, copied without decoding (`IndexedDatasetBuilder.add_index`). The result
is byte-identical to writing all documents in one pass. A directory is merged in sorted order of
its prefixes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from gpt_data.indexed_dataset import (
    IndexedDataset,
    IndexedDatasetBuilder,
    IndexedDatasetError,
    get_bin_path,
    get_idx_path,
)


def find_dataset_prefixes(directory: str) -> list[str]:
    """The prefixes of the `.idx/.bin` pairs in `directory`, sorted by name.

    Hidden files (such as a builder's unfinished `.partial` files) are ignored; a `.bin` or
    `.idx` without its partner is an error naming the missing file.
    """
    if not os.path.isdir(directory):
        raise IndexedDatasetError(f"{directory} is not a directory")
    names: set[str] = set()
    for entry in os.listdir(directory):
        stem, extension = os.path.splitext(entry)
        if entry.startswith(".") or extension not in (".idx", ".bin"):
            continue
        if os.path.isfile(os.path.join(directory, entry)):
            names.add(stem)
    prefixes = [os.path.join(directory, name) for name in sorted(names)]
    for prefix in prefixes:
        for path in (get_idx_path(prefix), get_bin_path(prefix)):
            if not os.path.isfile(path):
                raise IndexedDatasetError(f"indexed dataset file not found: {path}")
    return prefixes


def merge_datasets(
    prefixes: Sequence[str], output_prefix: str, *, multimodal: bool = False
) -> None:
    """Write `output_prefix`.bin/.idx holding the datasets of `prefixes` in order.

    All inputs must share one token dtype (that of the first). Nothing appears under the output
    names unless the whole merge succeeds.
    """
    prefixes = list(prefixes)
    if not prefixes:
        raise IndexedDatasetError(f"nothing to merge into {output_prefix}: no input datasets")
    output = os.path.abspath(output_prefix)
    if any(os.path.abspath(prefix) == output for prefix in prefixes):
        raise IndexedDatasetError(f"cannot merge {output_prefix} into itself")
    directory = os.path.dirname(output)
    if not os.path.isdir(directory):
        raise IndexedDatasetError(f"output directory {directory} does not exist")
    dtype = IndexedDataset(prefixes[0], multimodal=multimodal).dtype
    with IndexedDatasetBuilder(
        get_bin_path(output_prefix), dtype=dtype, multimodal=multimodal
    ) as builder:
        for prefix in prefixes:
            builder.add_index(prefix)
        builder.finalize(get_idx_path(output_prefix))


def merge_directory(directory: str, output_prefix: str, *, multimodal: bool = False) -> list[str]:
    """Merge every dataset of `directory` (sorted by name) into `output_prefix`; returns the inputs."""
    prefixes = find_dataset_prefixes(directory)
    merge_datasets(prefixes, output_prefix, multimodal=multimodal)
    return prefixes
