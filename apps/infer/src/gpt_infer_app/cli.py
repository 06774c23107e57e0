"""The command line: pretrain's parser (every model, tokenizer, checkpoint and inference flag,
the same groups and validation) plus the launcher's "text generation" group."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gpt_flags.flagspec import add_flags
from gpt_pretrain_app.cli import build_parser as build_pretrain_parser

from .config import TextGenerationConfig

#: What the original's launcher forces (`args_defaults`): weights only, and a checkpoint is
#: required. Inference runs no training, so validation's training-length check gets one
#: iteration it never runs.
LAUNCHER_DEFAULTS = {
    "no_load_rng": True,
    "no_load_optim": True,
    "exit_on_missing_checkpoint": True,
    "train_iters": 1,
}


def build_parser() -> argparse.ArgumentParser:
    parser = build_pretrain_parser(prog="infer")
    parser.description = (
        "Text generation and the text-generation server (Megatron-LM's "
        "tools/run_text_generation_server.py)."
    )
    add_flags(parser.add_argument_group(title=TextGenerationConfig.GROUP), TextGenerationConfig)
    parser.set_defaults(**LAUNCHER_DEFAULTS)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    import sys

    return build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
