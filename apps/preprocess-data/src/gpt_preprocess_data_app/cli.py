"""The command line: the original's tools/preprocess_data.py flags, in its group order.

The tokenizer group is gpt-tokenizers' own flag declaration (the original adds the same
`_add_tokenizer_args` group), so the two programs can never disagree about a tokenizer flag.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from gpt_flags.flagspec import add_flags, from_namespace
from gpt_tokenizers import TokenizerFlags

from .errors import PreprocessError
from .job import PreprocessJob

DESCRIPTION = (
    "Tokenize JSONL (or Parquet) documents into the original's .bin/.idx indexed datasets."
)


def build_parser() -> argparse.ArgumentParser:
    """All flags of the original's preprocess_data.py, plus --skip-bad-lines."""
    parser = argparse.ArgumentParser(prog="preprocess-data", description=DESCRIPTION)
    add_flags(parser.add_argument_group(title=TokenizerFlags.GROUP), TokenizerFlags)

    group = parser.add_argument_group(title="input data")
    group.add_argument(
        "--input",
        type=str,
        required=True,
        help="Path to input JSON lines (.jsonl, .jsonl.gz) or Parquet; a glob matches several "
        "files, read in sorted order.",
    )
    group.add_argument(
        "--json-keys",
        nargs="+",
        default=["text"],
        help="space separate listed of keys to extract from json",
    )
    group.add_argument(
        "--split-sentences", action="store_true", help="Split documents into sentences."
    )
    group.add_argument(
        "--keep-newlines",
        action="store_true",
        help="Keep newlines between sentences when splitting.",
    )
    group.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="Skip records that are not valid JSON objects with the --json-keys (or that the "
        "tokenizer rejects), and report how many were skipped, instead of stopping.",
    )

    group = parser.add_argument_group(title="tokenization process")
    group.add_argument(
        "--append-eod",
        action="store_true",
        help="Append an <eod> token to the end of a document.",
    )
    group.add_argument(
        "--lang",
        type=str,
        default="english",
        help="Language to use for NLTK-powered sentence splitting.",
    )

    group = parser.add_argument_group(title="output data")
    group.add_argument(
        "--output-prefix",
        type=str,
        required=True,
        help="Path to binary output file without suffix",
    )

    group = parser.add_argument_group(title="runtime")
    group.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Number of worker processes to launch (1 tokenizes in the main process).",
    )
    group.add_argument("--partitions", type=int, default=1, help="Number of file partitions")
    group.add_argument(
        "--log-interval",
        type=int,
        default=1000,
        help="Interval between progress updates",
    )
    group.add_argument(
        "--keep-sequential-samples",
        action="store_true",
        help="Ensure ordering of samples in .jsonl files is preserved when using partitions>1.",
    )
    return parser


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise PreprocessError(f"{flag} must be at least 1, got {value}")
    return value


def tokenizer_flags_from_args(args: argparse.Namespace) -> TokenizerFlags:
    """The tokenizer flags the original's preprocess_data.py builds with.

    Like the original, it always builds with 0 extra vocab ids (it overwrites the flag), so
    outputs match the original's dtype and ids; a given --vocab-extra-ids is reported and ignored.
    (The original's other overrides, the vocab padding and TP size, pad nothing here.)
    """
    flags = from_namespace(TokenizerFlags, args)
    if flags.vocab_extra_ids:
        print(
            "warning: --vocab-extra-ids is ignored, as in the original's preprocess_data.py "
            "(it always builds the tokenizer with 0 extra ids)",
            file=sys.stderr,
        )
    return replace(flags, vocab_extra_ids=0)


def job_from_args(args: argparse.Namespace) -> PreprocessJob:
    """Check the parsed flags and freeze them into a PreprocessJob."""
    if args.tokenizer_type is None:
        raise PreprocessError("--tokenizer-type is required")
    if not args.json_keys or len(set(args.json_keys)) != len(args.json_keys):
        raise PreprocessError(f"--json-keys must name distinct keys, got {args.json_keys}")
    if args.keep_newlines and not args.split_sentences:
        print("warning: --keep-newlines has no effect without --split-sentences", file=sys.stderr)
    if args.tokenizer_type.lower().startswith("bert") and not args.split_sentences:
        print("Are you sure you don't want to split sentences?", file=sys.stderr)
    return PreprocessJob(
        input=args.input,
        json_keys=tuple(args.json_keys),
        split_sentences=args.split_sentences,
        keep_newlines=args.keep_newlines,
        lang=args.lang,
        append_eod=args.append_eod,
        output_prefix=args.output_prefix,
        workers=_positive(args.workers, "--workers"),
        partitions=_positive(args.partitions, "--partitions"),
        keep_sequential_samples=args.keep_sequential_samples,
        log_interval=_positive(args.log_interval, "--log-interval"),
        skip_bad_lines=args.skip_bad_lines,
        tokenizer=tokenizer_flags_from_args(args),
    )
