"""Command-line entry point: parse, check, stream the loader's parts into the saver.

Exit codes: 0 done, 2 a usage or input error (one line on stderr, nothing left in
--save-dir), 130 interrupted (nothing left in --save-dir).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpt_models.hf_mapping import part_names

from .cli import build_parser
from .errors import ArgsError
from .plugins import loader, saver
from .staging import check_save_dir, staged
from .stream import streamed


def convert(args: argparse.Namespace) -> Path:
    """Run one conversion; returns the written directory. Raises ArgsError on bad input."""
    if args.model_type != "GPT":
        raise ArgsError(f"--model-type {args.model_type}: only GPT models are converted")
    if args.max_queue_size < 1:
        raise ArgsError(f"--max-queue-size {args.max_queue_size} must be at least 1")
    for flag in ("true_vocab_size", "make_vocab_size_divisible_by"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ArgsError(f"--{flag.replace('_', '-')} {value} must be positive")
    load_plugin, save_plugin = loader(args.loader), saver(args.saver)
    save_dir = Path(args.save_dir)
    if Path(args.load_dir).absolute() == save_dir.absolute():
        raise ArgsError("--save-dir must differ from --load-dir")
    check_save_dir(save_dir)
    metadata, parts = load_plugin.load(args)
    save_plugin.check(args, metadata)
    total = len(part_names(metadata.config))
    with staged(save_dir) as out:
        save_plugin.save(
            args, metadata, streamed(parts, max_queue_size=args.max_queue_size, total=total), out
        )
    print(
        f"converted {metadata.source} -> {args.saver} {save_dir}",
        file=sys.stderr,
    )
    return save_dir


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default sys.argv[1:]); returns the exit code."""
    try:
        args = build_parser(argv).parse_args(argv)
        convert(args)
    except ArgsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written to --save-dir", file=sys.stderr)
        return 130
    return 0
