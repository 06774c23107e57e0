"""The original's indexed dataset: `PREFIX.idx` (lengths, pointers, document bounds) + `PREFIX.bin`.

Layout of `.idx` (little-endian, packed): 9-byte magic, uint64 version (1), uint8 dtype code,
uint64 sequence count N, uint64 document-boundary count D, int32[N] lengths, int64[N] byte
pointers into `.bin`, int64[D] document boundaries (a prefix array of sequence indices starting at 0
and ending at N), and, for multimodal datasets only, int8[N] modes. `.bin` is the concatenated
tokens. Files written here are byte-identical to the original's.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
HEADER_SIZE = 34

_CODE_TO_DTYPE: dict[int, np.dtype] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int8),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.int64),
    6: np.dtype(np.float64),
    7: np.dtype(np.float32),
    8: np.dtype(np.uint16),
}
_DTYPE_TO_CODE = {dtype: code for code, dtype in _CODE_TO_DTYPE.items()}


class IndexedDatasetError(ValueError):
    """A missing, truncated or corrupt `.idx`/`.bin` pair; the message names the file."""


def dtype_from_code(code: int) -> np.dtype:
    """The token dtype stored under a `.idx` dtype code."""
    try:
        return _CODE_TO_DTYPE[code]
    except KeyError:
        raise IndexedDatasetError(f"unknown dtype code {code}") from None


def code_from_dtype(dtype: Any) -> int:
    """The `.idx` dtype code of a numpy dtype."""
    try:
        return _DTYPE_TO_CODE[np.dtype(dtype)]
    except KeyError:
        raise IndexedDatasetError(
            f"dtype {np.dtype(dtype)} cannot be stored in a .idx file"
        ) from None


def optimal_dtype(vocab_size: int | None) -> np.dtype:
    """Token dtype the original's preprocessing picks: uint16 below 65500 tokens, else int32."""
    if vocab_size is not None and vocab_size < 65500:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


def get_idx_path(path_prefix: str) -> str:
    return path_prefix + ".idx"


def get_bin_path(path_prefix: str) -> str:
    return path_prefix + ".bin"


class _Index:
    """The parsed `.idx` file, memory-mapped; every size is checked against the header."""

    def __init__(self, idx_path: str, multimodal: bool) -> None:
        try:
            file_size = os.path.getsize(idx_path)
            with open(idx_path, "rb") as stream:
                header = stream.read(HEADER_SIZE)
        except OSError as err:
            raise IndexedDatasetError(
                f"cannot read index file {idx_path}: {err.strerror}"
            ) from None
        if len(header) < 9 or header[:9] != INDEX_MAGIC:
            raise IndexedDatasetError(f"bad magic in {idx_path}: not an MMIDIDX index file")
        if len(header) < HEADER_SIZE:
            raise IndexedDatasetError(
                f"truncated index file {idx_path}: header is {len(header)} bytes"
            )
        (version,) = struct.unpack("<Q", header[9:17])
        if version != INDEX_VERSION:
            raise IndexedDatasetError(f"unsupported index version {version} in {idx_path}")
        (code,) = struct.unpack("<B", header[17:18])
        if code not in _CODE_TO_DTYPE:
            raise IndexedDatasetError(f"unknown dtype code {code} in {idx_path}")
        self.dtype = _CODE_TO_DTYPE[code]
        self.sequence_count, self.document_count = struct.unpack("<QQ", header[18:34])
        n, d = self.sequence_count, self.document_count
        expected = HEADER_SIZE + 12 * n + 8 * d + (n if multimodal else 0)
        if file_size < expected:
            raise IndexedDatasetError(
                f"truncated index file {idx_path}: {file_size} bytes, header promises {expected}"
            )
        if d == 0:
            raise IndexedDatasetError(f"corrupt index file {idx_path}: no document boundaries")
        buffer = np.memmap(idx_path, mode="r", dtype=np.uint8, shape=(expected,))
        self._buffer = buffer
        offset = HEADER_SIZE
        self.sequence_lengths = np.frombuffer(buffer, np.int32, n, offset)
        offset += 4 * n
        self.sequence_pointers = np.frombuffer(buffer, np.int64, n, offset)
        offset += 8 * n
        self.document_indices = np.frombuffer(buffer, np.int64, d, offset)
        offset += 8 * d
        self.sequence_modes = np.frombuffer(buffer, np.int8, n, offset) if multimodal else None
        if n and self.sequence_pointers[0] != 0:
            raise IndexedDatasetError(
                f"corrupt index file {idx_path}: the first sequence starts at byte "
                f"{self.sequence_pointers[0]} of the data file, expected 0"
            )
        if self.document_indices[0] != 0 or self.document_indices[-1] != n:
            raise IndexedDatasetError(
                f"corrupt index file {idx_path}: document indices run from "
                f"{self.document_indices[0]} to {self.document_indices[-1]}, expected 0 to {n}"
            )

    def bin_bytes_needed(self) -> int:
        if self.sequence_count == 0:
            return 0
        last = self.sequence_count - 1
        return (
            int(self.sequence_pointers[last])
            + int(self.sequence_lengths[last]) * self.dtype.itemsize
        )


class _MMapBinReader:
    """Reads tokens straight out of a memory-mapped `.bin`."""

    def __init__(self, bin_path: str, size: int) -> None:
        self._mmap = np.memmap(bin_path, mode="r", dtype=np.uint8, shape=(size,)) if size else None

    def read(self, dtype: np.dtype, count: int, offset: int) -> np.ndarray:
        if count == 0 or self._mmap is None:
            return np.empty(0, dtype=dtype)
        return np.frombuffer(self._mmap, dtype=dtype, count=count, offset=offset)


class _FileBinReader:
    """Reads tokens with positional reads (`--no-mmap-bin-files`), retrying transient failures."""

    def __init__(self, bin_path: str, retries: int = 3, first_sleep_s: float = 10.0) -> None:
        self._bin_path = bin_path
        self._retries = retries
        self._first_sleep_s = first_sleep_s

    def read(self, dtype: np.dtype, count: int, offset: int) -> np.ndarray:
        out = np.empty(count, dtype=dtype)
        nbytes = out.nbytes
        sleep_s = self._first_sleep_s
        for attempt in range(self._retries + 1):
            try:
                fd = os.open(self._bin_path, os.O_RDONLY)
                try:
                    data = os.pread(fd, nbytes, offset)
                finally:
                    os.close(fd)
                if len(data) != nbytes:
                    raise IndexedDatasetError(
                        f"truncated data file {self._bin_path}: short read at byte {offset}"
                    )
                out[:] = np.frombuffer(data, dtype=dtype)
                return out
            except OSError:
                if attempt == self._retries:
                    raise
                time.sleep(sleep_s)
                sleep_s *= 2
        raise AssertionError("unreachable")


class IndexedDataset:
    """A read-only `.idx/.bin` pair: sequence `i` is `self[i]`, a numpy array of tokens.

    `mmap=False` reads with positional file reads instead of mapping `.bin`, for file systems
    where mapping large files is slow or unsupported.
    """

    def __init__(self, path_prefix: str, multimodal: bool = False, mmap: bool = True) -> None:
        self._open(path_prefix, multimodal, mmap)

    def _open(self, path_prefix: str, multimodal: bool, mmap: bool) -> None:
        idx_path, bin_path = get_idx_path(path_prefix), get_bin_path(path_prefix)
        for path in (idx_path, bin_path):
            if not os.path.isfile(path):
                raise IndexedDatasetError(f"indexed dataset file not found: {path}")
        self.path_prefix = path_prefix
        self.multimodal = multimodal
        self.mmap = mmap
        self.index = _Index(idx_path, multimodal)
        needed = self.index.bin_bytes_needed()
        bin_size = os.path.getsize(bin_path)
        if bin_size < needed:
            raise IndexedDatasetError(
                f"truncated data file {bin_path}: {bin_size} bytes, index needs {needed}"
            )
        self._reader = _MMapBinReader(bin_path, bin_size) if mmap else _FileBinReader(bin_path)

    def __getstate__(self) -> tuple[str, bool, bool]:
        return (self.path_prefix, self.multimodal, self.mmap)

    def __setstate__(self, state: tuple[str, bool, bool]) -> None:
        self._open(*state)

    @staticmethod
    def exists(path_prefix: str) -> bool:
        return os.path.isfile(get_idx_path(path_prefix)) and os.path.isfile(
            get_bin_path(path_prefix)
        )

    @property
    def dtype(self) -> np.dtype:
        return self.index.dtype

    @property
    def sequence_lengths(self) -> np.ndarray:
        return self.index.sequence_lengths

    @property
    def sequence_pointers(self) -> np.ndarray:
        return self.index.sequence_pointers

    @property
    def document_indices(self) -> np.ndarray:
        return self.index.document_indices

    @property
    def sequence_modes(self) -> np.ndarray | None:
        return self.index.sequence_modes

    def __len__(self) -> int:
        return self.index.sequence_count

    def __getitem__(self, idx: int | np.integer | slice) -> Any:
        if isinstance(idx, (int, np.integer)):
            return self.get(int(idx))
        if isinstance(idx, slice):
            start, stop, step = idx.indices(len(self))
            if step != 1:
                raise ValueError("slices into an IndexedDataset must be contiguous")
            lengths = self.sequence_lengths[start:stop]
            if len(lengths) == 0:
                return []
            flat = self._reader.read(
                self.dtype, int(lengths.sum(dtype=np.int64)), int(self.sequence_pointers[start])
            )
            parts = np.split(flat, np.cumsum(lengths[:-1], dtype=np.int64))
            if self.multimodal:
                return parts, self.sequence_modes[start:stop]
            return parts
        raise TypeError(f"unexpected index type {type(idx).__name__}")

    @property
    def num_tokens(self) -> int:
        """Tokens stored in `.bin` for all sequences (their lengths summed)."""
        return self.index.bin_bytes_needed() // self.dtype.itemsize

    def read_tokens(self, start: int, count: int) -> np.ndarray:
        """`count` tokens of `.bin` from flat token position `start`, across sequence borders."""
        if start < 0 or count < 0 or start + count > self.num_tokens:
            raise IndexError(
                f"tokens [{start}, {start + count}) out of range for {self.path_prefix} "
                f"({self.num_tokens} tokens)"
            )
        return self._reader.read(self.dtype, count, start * self.dtype.itemsize)

    def get(self, idx: int, offset: int = 0, length: int | None = None) -> Any:
        """Tokens `[offset, offset + length)` of sequence `idx` (to its end when length is None)."""
        if not 0 <= idx < len(self):
            raise IndexError(f"sequence {idx} out of range for {self.path_prefix} ({len(self)})")
        size = int(self.sequence_lengths[idx])
        if length is None:
            length = size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise IndexError(
                f"tokens [{offset}, {offset + length}) out of range for sequence {idx} of length {size}"
            )
        pointer = int(self.sequence_pointers[idx]) + offset * self.dtype.itemsize
        tokens = self._reader.read(self.dtype, length, pointer)
        if self.multimodal:
            return tokens, self.sequence_modes[idx]
        return tokens


class _Growable:
    """An append-only numpy array (amortised doubling), so lengths need no Python list per item."""

    def __init__(self, dtype: Any, initial: int = 1024) -> None:
        self._data = np.empty(initial, dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, values: Any) -> None:
        values = np.asarray(values)
        need = self._size + values.size
        if need > self._data.size:
            grown = np.empty(max(need, 2 * self._data.size), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : need] = values.reshape(-1)
        self._size = need

    def append(self, value: int) -> None:
        self.extend(np.asarray([value]))

    def view(self) -> np.ndarray:
        return self._data[: self._size]


def _create_temporary(target: str) -> tuple[Any, str]:
    """Open a new hidden `.partial` file next to `target` (permissions follow the umask)."""
    directory, name = os.path.split(os.path.abspath(target))
    path = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise IndexedDatasetError(f"cannot write next to {target}: {err.strerror}") from None
    return os.fdopen(fd, "wb"), path


def _as_numpy(tokens: Any) -> np.ndarray:
    if hasattr(tokens, "detach"):  # a torch tensor
        tokens = tokens.detach().cpu().numpy()
    return np.asarray(tokens)


class IndexedDatasetBuilder:
    """Writes an `.idx/.bin` pair incrementally; tokens stream to disk, only lengths stay in memory.

    Everything is written under temporary names next to the targets and renamed by `finalize`,
    so an interrupted run never leaves a pair that looks valid. Use it as a context manager to
    delete the temporary files when an exception escapes.
    """

    def __init__(self, bin_path: str, dtype: Any = np.int32, multimodal: bool = False) -> None:
        self.dtype = np.dtype(dtype)
        code_from_dtype(self.dtype)
        self.multimodal = multimodal
        self._bin_path = bin_path
        self._data_file, self._tmp_bin_path = _create_temporary(bin_path)
        self._tmp_idx_path: str | None = None
        self._lengths = _Growable(np.int32)
        self._document_indices = _Growable(np.int64)
        self._document_indices.append(0)
        self._modes = _Growable(np.int8) if multimodal else None
        self._finalized = False

    def __enter__(self) -> IndexedDatasetBuilder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()

    def _check_open(self) -> None:
        if self._finalized or self._data_file.closed:
            raise RuntimeError(f"builder for {self._bin_path} is already finalized or aborted")

    def _cast(self, tokens: Any) -> np.ndarray:
        array = _as_numpy(tokens).reshape(-1)
        if array.size and array.dtype != self.dtype and self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            low, high = array.min(), array.max()
            if low < info.min or high > info.max:
                bad = low if low < info.min else high
                raise ValueError(f"token id {bad} does not fit the dataset dtype {self.dtype}")
        return np.ascontiguousarray(array, dtype=self.dtype)

    def _write_tokens(self, tokens: Any) -> int:
        array = self._cast(tokens)
        self._data_file.write(array.tobytes(order="C"))
        return int(array.size)

    def _add_lengths(self, lengths: Any, modes: Any) -> None:
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if lengths.size and (lengths.min() < 0 or lengths.max() > np.iinfo(np.int32).max):
            raise ValueError("sequence lengths must be in [0, 2**31)")
        self._lengths.extend(lengths)
        if self._modes is not None:
            self._modes.extend(np.zeros(lengths.size, np.int8) if modes is None else modes)

    def add_item(self, tokens: Any, mode: int = 0) -> None:
        """Append one sequence (close the document later with `end_document`)."""
        self._check_open()
        count = self._write_tokens(tokens)
        self._add_lengths([count], None if mode is None else [mode])

    def end_document(self) -> None:
        """Close the current document after one or more `add_item` calls."""
        self._check_open()
        self._document_indices.append(len(self._lengths))

    def add_document(self, tokens: Any, lengths: Sequence[int], modes: Any = None) -> None:
        """Append one document of several sequences (e.g. sentences) whose lengths sum to its size."""
        self._check_open()
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        array = self._cast(tokens)
        if int(lengths.sum()) != array.size:
            raise ValueError(
                f"document has {array.size} tokens but its sequence lengths sum to {int(lengths.sum())}"
            )
        self._data_file.write(array.tobytes(order="C"))
        self._add_lengths(lengths, modes)
        self._document_indices.append(len(self._lengths))

    def add_documents(self, tokens: Any, document_lengths: Sequence[int]) -> None:
        """Append many one-sequence documents at once: `tokens` is their concatenation."""
        self._check_open()
        lengths = np.asarray(document_lengths, dtype=np.int64).reshape(-1)
        array = self._cast(tokens)
        if int(lengths.sum()) != array.size:
            raise ValueError(
                f"{array.size} tokens given but the document lengths sum to {int(lengths.sum())}"
            )
        self._data_file.write(array.tobytes(order="C"))
        start = len(self._lengths)
        self._add_lengths(lengths, None)
        self._document_indices.extend(
            np.arange(start + 1, start + 1 + lengths.size, dtype=np.int64)
        )

    def add_index(self, path_prefix: str) -> None:
        """Append a whole existing dataset (same dtype): its index, then its `.bin` byte for byte."""
        self._check_open()
        other = _Index(get_idx_path(path_prefix), self.multimodal)
        if other.dtype != self.dtype:
            raise IndexedDatasetError(
                f"cannot merge {get_idx_path(path_prefix)}: dtype {other.dtype} != {self.dtype}"
            )
        bin_path = get_bin_path(path_prefix)
        if not os.path.isfile(bin_path):
            raise IndexedDatasetError(f"indexed dataset file not found: {bin_path}")
        if os.path.getsize(bin_path) < other.bin_bytes_needed():
            raise IndexedDatasetError(f"truncated data file {bin_path}")
        offset = len(self._lengths)
        self._lengths.extend(other.sequence_lengths)
        self._document_indices.extend(other.document_indices[1:] + offset)
        if self._modes is not None:
            self._modes.extend(other.sequence_modes)
        with open(bin_path, "rb") as source:
            shutil.copyfileobj(source, self._data_file, length=16 * 1024 * 1024)

    def finalize(self, idx_path: str) -> None:
        """Write the index and move both files to their final names (the `.idx` last)."""
        self._check_open()
        self._data_file.close()
        stream, self._tmp_idx_path = _create_temporary(idx_path)
        with stream:
            write_index(
                stream,
                self.dtype,
                self._lengths.view(),
                self._document_indices.view(),
                None if self._modes is None else self._modes.view(),
            )
        # Remove any old index first: a new .bin next to a stale .idx would look valid.
        if os.path.exists(idx_path):
            os.remove(idx_path)
        os.replace(self._tmp_bin_path, self._bin_path)
        os.replace(self._tmp_idx_path, idx_path)
        self._finalized = True

    def abort(self) -> None:
        """Drop everything written so far (the temporary files)."""
        if not self._data_file.closed:
            self._data_file.close()
        for path in (self._tmp_bin_path, self._tmp_idx_path):
            if path is not None and os.path.exists(path):
                os.remove(path)
        self._finalized = True


def write_index(
    stream: Any,
    dtype: Any,
    sequence_lengths: np.ndarray,
    document_indices: np.ndarray,
    sequence_modes: np.ndarray | None = None,
    chunk: int = 1 << 22,
) -> None:
    """Write a complete `.idx` image to a binary stream; pointers are computed in bounded chunks."""
    dtype = np.dtype(dtype)
    lengths = np.asarray(sequence_lengths, dtype=np.int32)
    documents = np.asarray(document_indices, dtype=np.int64)
    stream.write(INDEX_MAGIC)
    stream.write(struct.pack("<Q", INDEX_VERSION))
    stream.write(struct.pack("<B", code_from_dtype(dtype)))
    stream.write(struct.pack("<Q", lengths.size))
    stream.write(struct.pack("<Q", documents.size))
    stream.write(lengths.tobytes(order="C"))
    pointer = 0
    for start in range(0, lengths.size, chunk):
        part = lengths[start : start + chunk].astype(np.int64) * dtype.itemsize
        pointers = np.cumsum(part) - part + pointer
        stream.write(pointers.tobytes(order="C"))
        pointer += int(part.sum())
    stream.write(documents.tobytes(order="C"))
    if sequence_modes is not None:
        stream.write(np.asarray(sequence_modes, dtype=np.int8).tobytes(order="C"))
