"""Gather the documents of one batch into a few numpy arrays, one document at a time.

Tokenizers return Python lists of ints; turning those into the dataset dtype is the one
unavoidable cost of the pipeline beyond tokenizing. Each list is packed with `struct` straight
into one growing little-endian buffer right after it is made, while its ints are still in
cache: measured about twice as fast per token as numpy's list conversion, and no numpy
allocation per document.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_STRUCT_CODES = {
    ("u", 1): "B", ("i", 1): "b", ("u", 2): "H", ("i", 2): "h",
    ("u", 4): "I", ("i", 4): "i", ("u", 8): "Q", ("i", 8): "q",
}  # fmt: skip
"""struct format character of each integer dtype (standard sizes, with '<')."""


@dataclass
class EncodedDocs:
    """Documents of one json key: their tokens, sequence lengths, and sequences per document.

    A document with no tokens has 0 sequences; it still counts as a document, as in the original.
    """

    tokens: np.ndarray
    sequence_lengths: np.ndarray
    sequences_per_document: np.ndarray


class DocumentCollector:
    """Appends documents (each a list of per-sentence id lists) to one token buffer.

    Empty sentences are dropped; with `eod`, it ends each non-empty document, counted in that
    document's last sequence (the original's --append-eod). `add` raises OverflowError when an
    id does not fit `dtype` (the document is then partly written: stop using the collector).
    """

    def __init__(self, dtype: np.dtype, eod: int | None, capacity: int = 4096) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("<")
        if (self.dtype.kind, self.dtype.itemsize) not in _STRUCT_CODES:
            raise ValueError(f"token dtype must be an integer type, got {self.dtype}")
        self._code = _STRUCT_CODES[self.dtype.kind, self.dtype.itemsize]
        self._itemsize = self.dtype.itemsize
        self._buffer = bytearray(max(capacity, 16) * self._itemsize)
        self._end = 0  # bytes used
        # The eod id as packed bytes (b"" without --append-eod), appended by a slice copy.
        self._eod = b"" if eod is None else struct.pack(f"<{self._code}", eod)
        self._eod_ids = 0 if eod is None else 1
        self._lengths: list[int] = []
        self._counts: list[int] = []

    def _pack(self, ids: Sequence[int], n: int, tail: bytes = b"") -> None:
        """Append the `n` ids of `ids` (any sequence of ints), then the bytes of `tail`."""
        start = self._end
        middle = start + n * self._itemsize
        end = middle + len(tail)
        if end > len(self._buffer):
            self._buffer += bytes(max(end, 2 * len(self._buffer)) - len(self._buffer))
        try:
            struct.pack_into(f"<{n}{self._code}", self._buffer, start, *ids)
        except struct.error as err:  # an id out of the dtype's range (or not an int)
            raise OverflowError(f"token ids do not fit {self.dtype}: {err}") from None
        self._buffer[middle:end] = tail
        self._end = end

    def add_one(self, ids: Sequence[int]) -> None:
        """Append a document of one sequence: `add((ids,))`, with less work per document."""
        n = len(ids)
        if n:
            self._pack(ids, n, self._eod)
            self._lengths.append(n + self._eod_ids)
        self._counts.append(1 if n else 0)

    def add(self, sequences: Sequence[Sequence[int]]) -> None:
        """Append one document of several sequences (empty ones are dropped)."""
        kept = [ids for ids in sequences if len(ids)]
        last = len(kept) - 1
        for i, ids in enumerate(kept):
            if i == last:  # the eod ends the document's last sequence
                self._pack(ids, len(ids), self._eod)
                self._lengths.append(len(ids) + self._eod_ids)
            else:
                self._pack(ids, len(ids))
                self._lengths.append(len(ids))
        self._counts.append(len(kept))

    def __len__(self) -> int:
        """Documents added so far."""
        return len(self._counts)

    def finish(self) -> EncodedDocs:
        """The documents added so far, as arrays (the tokens are a view of the buffer)."""
        return EncodedDocs(
            np.frombuffer(self._buffer, dtype=self.dtype, count=self._end // self._itemsize),
            np.array(self._lengths, dtype=np.int32),
            np.array(self._counts, dtype=np.int32),
        )
