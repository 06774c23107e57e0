"""What one preprocessing run does, as parsed from the command line (field names = argparse dests)."""

from __future__ import annotations

from dataclasses import dataclass

from gpt_tokenizers import TokenizerFlags


@dataclass(frozen=True, kw_only=True)
class PreprocessJob:
    """The original's tools/preprocess_data.py flags, plus `skip_bad_lines`, checked and frozen."""

    input: str
    """--input: a JSONL file (optionally .gz), a Parquet file, or a glob of them."""

    json_keys: tuple[str, ...] = ("text",)
    """--json-keys: the fields to tokenize; each gets its own output dataset."""

    split_sentences: bool = False
    """--split-sentences: one sequence per sentence (NLTK punkt) instead of one per document."""

    keep_newlines: bool = False
    """--keep-newlines: punkt keeps the newline after a sentence in that sentence."""

    lang: str = "english"
    """--lang: the punkt model used by --split-sentences."""

    append_eod: bool = False
    """--append-eod: end each non-empty document with the tokenizer's eod id."""

    output_prefix: str
    """--output-prefix: outputs are {output_prefix}_{key}_{document|sentence}.bin/.idx."""

    workers: int = 1
    """--workers: tokenizing processes (1 tokenizes in the main process)."""

    partitions: int = 1
    """--partitions: round-robin partitions merged in order, as the original orders documents."""

    keep_sequential_samples: bool = False
    """--keep-sequential-samples: contiguous partitions (the input order is kept)."""

    log_interval: int = 1000
    """--log-interval: documents between progress lines when stderr is not a terminal."""

    skip_bad_lines: bool = False
    """--skip-bad-lines (ours): skip and count unusable records instead of stopping."""

    tokenizer: TokenizerFlags
    """The tokenizer flags (gpt-tokenizers' own flag class, as parsed)."""

    @property
    def level(self) -> str:
        """The output name's level: one sequence per sentence or per document."""
        return "sentence" if self.split_sentences else "document"

    @property
    def round_robin_partitions(self) -> int:
        """How many ways documents are dealt out; contiguous partitions keep the input order."""
        return 1 if self.keep_sequential_samples else self.partitions
