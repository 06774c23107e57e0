"""Turn a batch of records into token arrays: the work each worker process does.

Per record and per json key, as the original's Encoder: the text (or a list of pre-split
sentences) becomes one sequence per non-empty sentence, the document's ids are their
concatenation, and with --append-eod the eod id ends a non-empty document (counted in its last
sequence). A batch comes back as a few numpy arrays per key, so the writing process only copies
bytes. Records a user got wrong are reported (or skipped and counted), never raised, so the
message keeps its file and line when it crosses a process boundary.

Two paths give the same bytes. The fast one parses a JSONL batch in place (one C JSON scan per
line over the decoded block, no per-line strings) and tokenizes as it goes; at the first thing
out of the ordinary it gives up, and the careful one encodes the batch again, record by record,
to name the bad line or skip it.
"""

from __future__ import annotations

import json
import json.scanner
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gpt_tokenizers import SFTPromptConfig, Tokenizer, TokenizerFlags, build_tokenizer

from .collect import DocumentCollector, EncodedDocs
from .errors import PreprocessError
from .inputs import Batch
from .sentences import SentenceSplitter, load_sentence_splitter, split_sentences

_scan_json = json.scanner.make_scanner(json.JSONDecoder())
"""json.loads' own C scanner: (value, end) = _scan_json(text, start), with json.loads' defaults."""

_LINES_PER_PHASE = 32
"""Lines parsed before they are tokenized (alternating per line measured ~1% slower)."""


@dataclass(frozen=True)
class EncodeSettings:
    """What a worker needs to encode (picklable: sent once to each worker)."""

    json_keys: tuple[str, ...]
    tokenizer: TokenizerFlags
    dtype: str
    append_eod: bool = False
    split_sentences: bool = False
    keep_newlines: bool = False
    lang: str = "english"
    partitions: int = 1
    skip_bad_lines: bool = False


@dataclass
class EncodedBatch:
    """The result of one Batch: `parts[partition][key index]`, plus counts for progress."""

    documents: int
    nbytes: int
    parts: list[list[EncodedDocs]] = field(default_factory=list)
    skipped: int = 0
    first_skipped: str | None = None
    error: str | None = None


def build_job_tokenizer(flags: TokenizerFlags) -> Tokenizer:
    """The tokenizer of a run. preprocess_data has no "sft" flag group, so an SFTTokenizer gets
    that group's defaults (prompt format nemotron-h-aligned)."""
    return build_tokenizer(flags, sft_prompt=SFTPromptConfig())


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
        self.tokenizer = (
            tokenizer if tokenizer is not None else build_job_tokenizer(settings.tokenizer)
        )
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

    def _encode_value(self, key: str, value: Any) -> list[list[int]]:
        """The ids of each sentence of one field; PreprocessError names the problem."""
        try:
            if type(value) is str and self.splitter is None:
                return [self.tokenizer.tokenize(value)]  # the common case, nothing else to do
            return [self.tokenizer.tokenize(s) for s in self._sentences(key, value)]
        except PreprocessError:
            raise
        except Exception as err:  # any tokenizer's complaint about this text
            raise PreprocessError(f"key {key!r}: the tokenizer failed: {err}") from None

    def _collectors(self, batch: Batch) -> list[list[DocumentCollector]]:
        """Empty collectors, `[partition][key]`, sized for about one token per 4 input bytes."""
        ways = self.settings.partitions
        capacity = batch.nbytes // (4 * ways) + 1024
        return [
            [DocumentCollector(self.dtype, self.eod, capacity) for _ in self.settings.json_keys]
            for _ in range(ways)
        ]

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
        if batch.data is not None:
            result = self._encode_fast(batch)
            if result is not None:
                return result
        return self._encode_careful(batch)

    def _encode_fast(self, batch: Batch) -> EncodedBatch | None:
        """A JSONL batch in one pass; None at the first line that is not a plain good record.

        A good line is a JSON object (json.loads' syntax, nothing else on the line but an
        optional CR) whose --json-keys values tokenize and fit the dtype; blank lines are
        skipped. Anything else (including malformed JSON and bad UTF-8) is the careful path's
        to report, so no error handling here needs to be exact.
        """
        try:
            text = batch.data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        parts = self._collectors(batch)
        ways = len(parts)
        # Per partition, (key, add a one-sequence document, add any document) for each key.
        targets = [
            [(key, c.add_one, c.add) for key, c in zip(self.settings.json_keys, part)]
            for part in parts
        ]
        scan, encode_value, tokenize = _scan_json, self._encode_value, self.tokenizer.tokenize
        plain = self.splitter is None  # a string value is then one sequence
        record, pos, size = batch.first_record, 0, len(text)
        try:
            while pos < size:
                # Parse a few lines, then tokenize them: each phase's code stays in cache.
                objs = []  # (record, object)
                while pos < size and len(objs) < _LINES_PER_PHASE:
                    if text[pos] == "\n":  # a blank line is no document
                        pos += 1
                        record += 1
                        continue
                    obj, end = scan(text, pos)
                    if end < size and text[end] != "\n":
                        if text[end] != "\r" or end + 1 < size and text[end + 1] != "\n":
                            return None
                        end += 1
                    pos = end + 1
                    objs.append((record, obj))
                    record += 1
                for record_index, obj in objs:
                    for key, add_one, add in targets[record_index % ways]:
                        value = obj[key]
                        if plain and type(value) is str:
                            add_one(tokenize(value))
                        else:
                            add(encode_value(key, value))
        except Exception:  # whatever it was, the careful path names it
            return None
        return EncodedBatch(
            documents=sum(len(part[0]) for part in parts),
            nbytes=batch.nbytes,
            parts=[[c.finish() for c in part] for part in parts],
        )

    def _encode_careful(self, batch: Batch) -> EncodedBatch:
        """Record by record: the first bad record is an error, or skipped and counted."""
        result = EncodedBatch(documents=0, nbytes=batch.nbytes)
        parts = self._collectors(batch)
        ways = len(parts)
        skip = self.settings.skip_bad_lines
        keys = self.settings.json_keys
        for offset, values, problem in self._records(batch):
            line = batch.first_line + offset
            if values is not None:
                try:
                    encoded = [self._encode_value(k, v) for k, v in zip(keys, values)]
                except PreprocessError as err:
                    problem = str(err)
            if problem is not None:
                message = f"{batch.source}:{line}: {problem}"
                if not skip:
                    result.error = message
                    return result
                result.skipped += 1
                result.first_skipped = result.first_skipped or message
                continue
            if values is None:
                continue  # a blank line
            try:
                for collector, sequences in zip(
                    parts[(batch.first_record + offset) % ways], encoded
                ):
                    collector.add(sequences)
            except OverflowError:
                result.error = (
                    f"{batch.source}:{line}: a token id does not fit the dataset dtype "
                    f"{self.dtype} (tokenizer vocab_size {self.tokenizer.vocab_size})"
                )
                return result
            result.documents += 1
        result.parts = [[c.finish() for c in part] for part in parts]
        return result


# --- worker process side -----------------------------------------------------------------

_worker_encoder: Encoder | None = None
_worker_init_error: Exception | None = None


def init_worker(settings: EncodeSettings, encoder: Encoder | None = None) -> None:
    """Pool initializer: build the tokenizer once per worker; Ctrl-C is the parent's to handle.

    A forked worker is handed the parent's Encoder (copied with the process, nothing rebuilt).
    """
    global _worker_encoder, _worker_init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent may have its own handler
    try:
        _worker_encoder = encoder if encoder is not None else Encoder(settings)
    except Exception as err:  # reported with the first batch instead of respawning forever
        _worker_init_error = err


def encode_in_worker(batch: Batch) -> EncodedBatch:
    """Pool task: encode one batch with this worker's Encoder."""
    if _worker_init_error is not None:
        raise PreprocessError(f"a worker could not start: {_worker_init_error}")
    assert _worker_encoder is not None, "init_worker was not run"
    return _worker_encoder.encode(batch)
