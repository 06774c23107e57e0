"""Read the input as a stream of record batches: JSON lines (plain or gzip) or Parquet rows.

Nothing here parses JSON: a batch carries raw lines (or an Arrow record batch) to whichever
process tokenizes it, so the reading process stays cheap. Memory is one block per batch, however
large the corpus; a line longer than a block is gathered from several reads.
"""

from __future__ import annotations

import glob
import gzip
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import PreprocessError

BLOCK_BYTES = 1 << 20
"""JSONL bytes per batch: big enough to amortise the hand-off to a worker, small enough to stream."""

PARQUET_ROWS = 1024
"""Parquet rows per batch."""

PARQUET_SUFFIXES = (".parquet", ".pq")

_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Batch:
    """Consecutive records of one input file.

    JSONL records arrive as `data`: whole lines, bytes as read (the last line of a file may lack
    its newline); Parquet records as `table`, an Arrow record batch. `first_line` is the 1-based
    line (row) of the first record in its file, for messages; `first_record` counts records of
    all inputs from 0 and decides each record's round-robin partition, as the original deals
    out lines. `num_records` counts blank lines too.
    """

    source: str
    first_line: int
    first_record: int
    num_records: int
    nbytes: int
    data: bytes | None = None
    table: Any = None


def expand_inputs(pattern: str) -> list[str]:
    """`--input` as a list of files: the path itself if it is a file, else its glob, sorted."""
    if os.path.isfile(pattern):
        return [pattern]
    if os.path.isdir(pattern):
        raise PreprocessError(f"--input: is a directory, expected a file or a glob: {pattern}")
    matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not matches:
        raise PreprocessError(f"--input: no such file (and no file matches the glob): {pattern}")
    return matches


def is_parquet(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIXES)


def input_size(paths: Sequence[str]) -> int | None:
    """Total bytes the batches will report, when known up front (plain JSONL only)."""
    if any(p.endswith(".gz") or is_parquet(p) for p in paths):
        return None
    return sum(os.path.getsize(p) for p in paths)


def _open_binary(path: str) -> Any:
    try:
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as err:
        raise PreprocessError(f"--input: cannot read {path}: {err.strerror or err}") from None


def _count_lines(data: bytes) -> int:
    """Newlines in `data`: numpy's vectorised compare, about 4x bytes.count's speed."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A))


def _jsonl_batches(path: str, first_record: int, block_bytes: int) -> Iterator[Batch]:
    line = 1
    record = first_record
    pending: list[bytes] = []  # the start of a line that no block has finished yet
    first = True
    with _open_binary(path) as stream:
        while True:
            try:
                block = stream.read(block_bytes)
            except (OSError, EOFError, zlib.error) as err:
                raise PreprocessError(f"{path}: cannot read past line {line}: {err}") from None
            if first:
                first = False
                if block.startswith(_UTF8_BOM):
                    block = block[len(_UTF8_BOM) :]
            if not block:
                break
            cut = block.rfind(b"\n")
            if cut < 0:
                pending.append(block)
                continue
            data = block[: cut + 1]
            if pending:
                data = b"".join(pending) + data
            pending = [block[cut + 1 :]]
            count = _count_lines(data)
            yield Batch(path, line, record, count, len(data), data=data)
            line += count
            record += count
    tail = b"".join(pending)
    if tail:
        yield Batch(path, line, record, 1, len(tail), data=tail)


def _parquet_batches(
    path: str, keys: Sequence[str], first_record: int, rows: int
) -> Iterator[Batch]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PreprocessError(
            f"--input: {path} is Parquet, which needs pyarrow (pip install pyarrow)"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for unreadable files
        raise PreprocessError(f"--input: cannot read Parquet file {path}: {err}") from None
    columns = parquet.schema_arrow.names
    missing = [k for k in keys if k not in columns]
    if missing:
        raise PreprocessError(
            f"{path}: no column {missing[0]!r} for --json-keys (columns: {', '.join(columns)})"
        )
    line = 1
    record = first_record
    for table in parquet.iter_batches(batch_size=rows, columns=list(keys)):
        yield Batch(path, line, record, table.num_rows, table.nbytes, table=table)
        line += table.num_rows
        record += table.num_rows


def iter_batches(
    paths: Sequence[str],
    keys: Sequence[str],
    on_open: Callable[[str], None] | None = None,
    block_bytes: int | None = None,
    parquet_rows: int | None = None,
) -> Iterator[Batch]:
    """Every record of every input, in order, as batches; `on_open` hears each file as it opens."""
    block_bytes = block_bytes or BLOCK_BYTES
    parquet_rows = parquet_rows or PARQUET_ROWS
    record = 0
    for path in paths:
        if on_open is not None:
            on_open(path)
        if is_parquet(path):
            batches = _parquet_batches(path, keys, record, parquet_rows)
        else:
            batches = _jsonl_batches(path, record, block_bytes)
        for batch in batches:
            yield batch
            record = batch.first_record + batch.num_records
