"""Stop early when a dataset's token ids do not fit the tokenizer's vocabulary.

A `.bin` tokenized with another tokenizer (or a smaller `--vocab-size`) trains silently on wrong
embeddings, or fails deep inside the model with an index error on one rank. Scanning the token
array once is cheap (a numpy max over the memory-mapped file, in bounded chunks), so the training
app can check every dataset it reads before the first step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from gpt_data.indexed_dataset import IndexedDataset

DEFAULT_CHUNK_TOKENS = 1 << 24
"""Tokens examined per numpy reduction: bounded memory (32-64 MiB) with negligible overhead."""


def check_token_ids(
    source: Any, vocab_size: int, *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
) -> None:
    """Raise a one-line ValueError naming the `.bin` file, the bad id and its sequence when a
    token id of the data is negative or `>= vocab_size`.

    `source` is a dataset prefix, an IndexedDataset, a GPTDataset, a BlendedDataset, or a list of
    these (None entries and datasets without a `.bin`, such as mock or SFT data, are skipped).
    Each `.bin` is scanned once, however many datasets read it. Pass the tokenizer's vocab_size
    (not the padded one): ids in the padding are no tokens of the tokenizer either.
    """
    if int(vocab_size) <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    seen: set[str] = set()
    for dataset in indexed_datasets_of(source):
        key = os.path.realpath(dataset.path_prefix + ".bin")
        if key in seen:
            continue
        seen.add(key)
        _check_one(dataset, int(vocab_size), chunk_tokens)


def indexed_datasets_of(source: Any) -> Iterator[IndexedDataset]:
    """Every IndexedDataset behind `source` (prefixes are opened; blends and lists recursed)."""
    if source is None:
        return
    if isinstance(source, (str, os.PathLike)):
        yield IndexedDataset(os.fspath(source))
    elif isinstance(source, IndexedDataset):
        yield source
    elif isinstance(source, (list, tuple)):
        for item in source:
            yield from indexed_datasets_of(item)
    elif hasattr(source, "datasets"):  # BlendedDataset
        yield from indexed_datasets_of(list(source.datasets))
    elif hasattr(source, "dataset"):  # GPTDataset and its subclasses
        yield from indexed_datasets_of(source.dataset)


def _check_one(dataset: IndexedDataset, vocab_size: int, chunk_tokens: int) -> None:
    dtype = dataset.dtype
    if dtype.kind == "u" and np.iinfo(dtype).max < vocab_size:
        return  # every value the dtype can hold is a valid id
    signed = dtype.kind != "u"
    total = dataset.num_tokens
    for start in range(0, total, chunk_tokens):
        chunk = dataset.read_tokens(start, min(chunk_tokens, total - start))
        if chunk.max() < vocab_size and (not signed or chunk.min() >= 0):
            continue
        bad = np.flatnonzero((chunk >= vocab_size) | (chunk < 0))[0]
        position = start + int(bad)
        value = chunk[bad].item()
        sequence = _sequence_of(dataset, position)
        raise ValueError(
            f"{dataset.path_prefix}.bin: token id {value} (sequence {sequence}, token "
            f"{position}) is outside the vocabulary [0, {vocab_size}); was the data tokenized "
            "with another tokenizer or --vocab-size?"
        )


def _sequence_of(dataset: IndexedDataset, position: int) -> int:
    """The sequence holding flat token `position` (empty sequences hold nothing)."""
    byte = position * dataset.dtype.itemsize
    return int(np.searchsorted(dataset.sequence_pointers, byte, side="right")) - 1
