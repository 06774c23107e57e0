"""Append encoded batches to the output datasets; publish them only when the run completes.

gpt-data's IndexedDatasetBuilder writes under temporary names and renames on finalize, so an
interrupted run leaves nothing that looks like a dataset. Round-robin partitions are written as
separate datasets in a hidden scratch directory next to the output and merged in partition order
at the end (the original's document order); contiguous partitions keep the input order, so they
are written straight to the output, which is the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
from gpt_data.indexed_dataset import IndexedDatasetBuilder

from .collect import EncodedDocs
from .encode import EncodedBatch


def output_prefix(prefix: str, key: str, level: str) -> str:
    """The original's output name: {output_prefix}_{key}_{document|sentence}."""
    return f"{prefix}_{key}_{level}"


def write_documents(builder: IndexedDatasetBuilder, docs: EncodedDocs) -> None:
    """Append documents; runs of one-sequence documents go in one bulk call each."""
    counts = docs.sequences_per_document
    if counts.size == 0:
        return
    irregular = np.flatnonzero(counts != 1)
    if irregular.size == 0:
        builder.add_documents(docs.tokens, docs.sequence_lengths)
        return
    lengths = docs.sequence_lengths
    seq_at = np.zeros(counts.size + 1, dtype=np.int64)  # first sequence of each document
    np.cumsum(counts, out=seq_at[1:])
    tok_at = np.zeros(lengths.size + 1, dtype=np.int64)  # first token of each sequence
    np.cumsum(lengths, out=tok_at[1:])

    def span(first_doc: int, end_doc: int) -> tuple[np.ndarray, np.ndarray]:
        s0, s1 = seq_at[first_doc], seq_at[end_doc]
        return docs.tokens[tok_at[s0] : tok_at[s1]], lengths[s0:s1]

    done = 0
    for doc in irregular.tolist():
        if doc > done:
            builder.add_documents(*span(done, doc))
        builder.add_document(*span(doc, doc + 1))  # empty, or several sentences
        done = doc + 1
    if done < counts.size:
        builder.add_documents(*span(done, counts.size))


def _publish(builders: Sequence[IndexedDatasetBuilder], prefixes: Sequence[str]) -> None:
    """Finalize each builder into its prefix; all or none: a failure removes those done."""
    done: list[str] = []
    try:
        for builder, prefix in zip(builders, prefixes):
            builder.finalize(prefix + ".idx")
            done.append(prefix)
    except BaseException:
        for prefix in done:
            for ext in (".bin", ".idx"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(prefix + ext)
        raise


class DatasetWriter:
    """The datasets of one run: a builder per json key, and per partition when round-robin."""

    def __init__(
        self, prefix: str, keys: Sequence[str], level: str, dtype: np.dtype, partitions: int = 1
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.outputs = [output_prefix(prefix, key, level) for key in keys]
        self._scratch: str | None = None
        self._final: list[IndexedDatasetBuilder] = []
        self._parts: list[list[IndexedDatasetBuilder]] = []
        self._part_prefixes: list[list[str]] = []
        try:
            if partitions == 1:
                self._parts = [
                    [IndexedDatasetBuilder(p + ".bin", self.dtype) for p in self.outputs]
                ]
                self._part_prefixes = [self.outputs]
            else:
                directory, name = os.path.split(os.path.abspath(prefix))
                self._scratch = tempfile.mkdtemp(prefix=f".{name}.partitions.", dir=directory)
                for i in range(partitions):
                    names = [
                        os.path.join(self._scratch, output_prefix(f"{name}_{i}", key, level))
                        for key in keys
                    ]
                    self._part_prefixes.append(names)
                    self._parts.append(
                        [IndexedDatasetBuilder(n + ".bin", self.dtype) for n in names]
                    )
        except BaseException:
            self.abort()
            raise

    def write(self, batch: EncodedBatch) -> None:
        """Append one encoded batch, each partition's documents to that partition's builders."""
        for builders, part in zip(self._parts, batch.parts):
            for builder, docs in zip(builders, part):
                write_documents(builder, docs)

    def finalize(self, publishing: Callable[[], AbstractContextManager] | None = None) -> list[str]:
        """Complete every output, then publish them all; returns their prefixes.

        Publishing (each `.idx` written, then `.bin` and `.idx` renamed into place) runs inside
        `publishing()`, a context that holds back interruptions, after everything slow (merging
        partitions) is done; if it fails midway, the outputs it published are removed again.
        """
        try:
            final = self._parts[0]
            if self._scratch is not None:
                for builders, prefixes in zip(self._parts, self._part_prefixes):
                    for builder, prefix in zip(builders, prefixes):
                        builder.finalize(prefix + ".idx")
                for k, out in enumerate(self.outputs):
                    merged = IndexedDatasetBuilder(out + ".bin", self.dtype)
                    self._final.append(merged)
                    for prefixes in self._part_prefixes:
                        merged.add_index(prefixes[k])
                final = self._final
            with publishing() if publishing is not None else nullcontext():
                _publish(final, self.outputs)
        except BaseException:
            self.abort()
            raise
        self._remove_scratch()
        return list(self.outputs)

    def abort(self) -> None:
        """Drop everything written so far; published outputs of earlier runs stay as they were."""
        for builders in [*self._parts, self._final]:
            for builder in builders:
                builder.abort()
        self._remove_scratch()

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
