"""Turn a batch of records into token arrays: the work each worker process does.

Per record and per json key, as the original's Encoder: the text (or a list of pre-split
sentences) becomes one sequence per non-empty sentence, the document's ids are their
concatenation, and with --append-eod the eod id ends a non-empty document (counted in its last
sequence). A batch comes back as a few numpy arrays per key, so the writing process only copies
bytes. Records a user got wrong are reported (or skipped and counted), never raised, so the
message keeps its file and line when it crosses a process boundary.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gpt_tokenizers import Tokenizer, TokenizerConfig, build_tokenizer

from .errors import PreprocessError
from .inputs import Batch
from .sentences import SentenceSplitter, load_sentence_splitter, split_sentences


@dataclass(frozen=True)
class EncodeSettings:
    """What a worker needs to encode (picklable: sent once to each worker)."""

    json_keys: tuple[str, ...]
    tokenizer: TokenizerConfig
    dtype: str
    append_eod: bool = False
    split_sentences: bool = False
    keep_newlines: bool = False
    lang: str = "english"
    partitions: int = 1
    skip_bad_lines: bool = False


@dataclass
class EncodedDocs:
    """Documents of one json key: their tokens, sequence lengths, and sequences per document.

    A document with no tokens has 0 sequences; it still counts as a document, as in the original.
    """

    tokens: np.ndarray
    sequence_lengths: np.ndarray
    sequences_per_document: np.ndarray


@dataclass
class EncodedBatch:
    """The result of one Batch: `parts[partition][key index]`, plus counts for progress."""

    documents: int
    nbytes: int
    parts: list[list[EncodedDocs]] = field(default_factory=list)
    skipped: int = 0
    first_skipped: str | None = None
    error: str | None = None


def assemble(
    documents: Sequence[Sequence[list[int]]], eod: int | None, dtype: np.dtype
) -> EncodedDocs:
    """Documents (each a list of per-sentence ids) as arrays, empty sentences dropped.

    Each id list is converted straight into its slice of the output array (one pass over the
    Python ints, the dominant cost); with `eod`, it ends each non-empty document, counted in
    that document's last sequence. Raises OverflowError when an id does not fit `dtype`.
    """
    sequences = [ids for doc in documents for ids in doc if ids]
    counts = np.fromiter(
        (sum(1 for ids in doc if ids) for doc in documents), dtype=np.int32, count=len(documents)
    )
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    last = None
    if eod is not None and sequences:
        last = np.cumsum(counts, dtype=np.int64)[counts > 0] - 1  # each document's last sequence
        lengths[last] += 1
    ends = np.cumsum(lengths)
    tokens = np.empty(int(ends[-1]) if sequences else 0, dtype=dtype)
    start = 0
    for ids, end in zip(sequences, ends.tolist()):
        tokens[start : start + len(ids)] = ids
        start = end
    if last is not None:
        tokens[ends[last] - 1] = eod
    return EncodedDocs(tokens, lengths.astype(np.int32), counts)


def _lines(data: bytes) -> list[str | UnicodeDecodeError]:
    """The lines of a JSONL block as text; a line that is not UTF-8 becomes its decoding error."""
    if data.endswith(b"\n"):
        data = data[:-1]
    try:
        return data.decode("utf-8").split("\n")  # one decode per block: the common case
    except UnicodeDecodeError:
        pass
    lines: list[str | UnicodeDecodeError] = []
    for raw in data.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            lines.append(err)
    return lines


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list with non-string items"
    return type(value).__name__


class Encoder:
    """The tokenizer (and sentence splitter) of one process, applied to whole batches."""

    def __init__(self, settings: EncodeSettings, tokenizer: Tokenizer | None = None) -> None:
        self.settings = settings
        self.tokenizer = tokenizer if tokenizer is not None else build_tokenizer(settings.tokenizer)
        self.dtype = np.dtype(settings.dtype)
        self.eod = self.tokenizer.eod if settings.append_eod else None
        self.splitter: SentenceSplitter | None = None
        if settings.split_sentences:
            self.splitter = load_sentence_splitter(settings.lang, settings.keep_newlines)

    def _sentences(self, key: str, value: Any) -> list[str]:
        if isinstance(value, str):
            if self.splitter is None:
                return [value]
            return split_sentences(self.splitter, value)
        if isinstance(value, list) and all(isinstance(s, str) for s in value):
            return value  # already split into sentences
        raise PreprocessError(
            f"key {key!r} is {_json_type(value)}, expected a string or a list of strings"
        )

    def _encode_record(self, values: Sequence[Any]) -> list[list[list[int]]]:
        """Per key, the ids of each sentence of one record; PreprocessError names the problem."""
        tokenize = self.tokenizer.tokenize
        out = []
        for key, value in zip(self.settings.json_keys, values):
            sentences = self._sentences(key, value)
            try:
                out.append([tokenize(s) for s in sentences])
            except Exception as err:  # any tokenizer's complaint about this text
                raise PreprocessError(f"key {key!r}: the tokenizer failed: {err}") from None
        return out

    def _encode_plain(self, records: list[Sequence[Any]]) -> list[list[list[list[int]]]] | None:
        """The common case in bulk: every value a string, no sentence splitting.

        Returns per key, per record, [ids]; None when the case does not apply or a text
        fails, so that `_encode_record` handles the batch record by record.
        """
        if self.splitter is not None:
            return None
        tokenize = self.tokenizer.tokenize
        out = []
        for column in zip(*records):
            if not all(type(text) is str for text in column):
                return None
            try:
                out.append([[tokenize(text)] for text in column])
            except Exception:  # found again, with its line, record by record
                return None
        return out

    def _records(self, batch: Batch) -> Iterator[tuple[int, Sequence[Any] | None, str | None]]:
        """(offset in batch, values per key, what is wrong): values None for a blank line."""
        keys = self.settings.json_keys
        if batch.data is None:
            columns = [batch.table.column(key).to_pylist() for key in keys]
            for offset, values in enumerate(zip(*columns)):
                yield offset, values, None
            return
        loads = json.loads
        for offset, line in enumerate(_lines(batch.data)):
            if isinstance(line, UnicodeDecodeError):
                yield offset, None, f"not valid UTF-8 (byte {line.start + 1} of the line)"
                continue
            try:
                obj = loads(line)
            except ValueError as err:
                if line.strip():
                    col = getattr(err, "colno", None)
                    where = f" at column {col}" if col is not None else ""
                    yield offset, None, f"malformed JSON: {getattr(err, 'msg', err)}{where}"
                else:
                    yield offset, None, None  # a blank line is no document
                continue
            if not isinstance(obj, dict):
                yield offset, None, f"expected a JSON object, got {_json_type(obj)}"
                continue
            try:
                yield offset, [obj[key] for key in keys], None
            except KeyError as err:
                present = ", ".join(map(str, list(obj)[:10])) or "none"
                yield offset, None, f"no key {err.args[0]!r} (keys: {present})"

    def encode(self, batch: Batch) -> EncodedBatch:
        """Tokenize every record of `batch`, dealing documents into their round-robin partitions."""
        settings = self.settings
        result = EncodedBatch(documents=0, nbytes=batch.nbytes)
        problems: list[tuple[int, str]] = []  # (offset, what), for errors and skipped records
        offsets: list[int] = []
        records: list[Sequence[Any]] = []
        for offset, values, problem in self._records(batch):
            if values is not None:
                offsets.append(offset)
                records.append(values)
            elif problem is not None:
                problems.append((offset, problem))
                if not settings.skip_bad_lines:
                    break  # an earlier record may still fail to tokenize: encode those first

        per_key = self._encode_plain(records) if records else [[] for _ in settings.json_keys]
        if per_key is None:
            kept_offsets: list[int] = []
            kept: list[list[list[list[int]]]] = []
            for offset, values in zip(offsets, records):
                try:
                    kept.append(self._encode_record(values))
                    kept_offsets.append(offset)
                except PreprocessError as err:
                    problems.append((offset, str(err)))
                    if not settings.skip_bad_lines:
                        break
            offsets = kept_offsets
            per_key = [list(column) for column in zip(*kept)] or [[] for _ in settings.json_keys]

        if problems:
            offset, what = min(problems)
            message = f"{batch.source}:{batch.first_line + offset}: {what}"
            if not settings.skip_bad_lines:
                result.error = message
                return result
            result.skipped = len(problems)
            result.first_skipped = message

        result.documents = len(offsets)
        ways = settings.partitions
        try:
            if ways == 1:
                result.parts = [[assemble(docs, self.eod, self.dtype) for docs in per_key]]
            else:
                where = [(batch.first_record + offset) % ways for offset in offsets]
                result.parts = [
                    [
                        assemble(
                            [d for d, w in zip(docs, where) if w == part], self.eod, self.dtype
                        )
                        for docs in per_key
                    ]
                    for part in range(ways)
                ]
        except OverflowError:
            last = batch.first_line + batch.num_records - 1
            result.error = (
                f"{batch.source}:{batch.first_line}-{last}: a token id does not fit the dataset "
                f"dtype {self.dtype} (tokenizer vocab_size {self.tokenizer.vocab_size})"
            )
        return result


# --- worker process side -----------------------------------------------------------------

_worker_encoder: Encoder | None = None
_worker_init_error: Exception | None = None


def init_worker(settings: EncodeSettings) -> None:
    """Pool initializer: build the tokenizer once per worker; Ctrl-C is the parent's to handle."""
    global _worker_encoder, _worker_init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _worker_encoder = Encoder(settings)
    except Exception as err:  # reported with the first batch instead of respawning forever
        _worker_init_error = err


def encode_in_worker(batch: Batch) -> EncodedBatch:
    """Pool task: encode one batch with this worker's Encoder."""
    if _worker_init_error is not None:
        raise PreprocessError(f"a worker could not start: {_worker_init_error}")
    assert _worker_encoder is not None, "init_worker was not run"
    return _worker_encoder.encode(batch)
