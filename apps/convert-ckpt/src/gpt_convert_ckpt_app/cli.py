"""The command line: the original converter's flags, then the chosen plugins' own groups."""

from __future__ import annotations

import argparse

from .plugins import loader, saver

DESCRIPTION = (
    "Convert GPT checkpoints between the original's torch format (any TP/PP layout) and HF "
    "transformers directories."
)


def _base_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert-ckpt", description=DESCRIPTION, allow_abbrev=False
    )
    parser.add_argument(
        "--model-type", type=str, required=True, choices=["GPT", "BERT"], help="Type of the model"
    )
    parser.add_argument(
        "--loader",
        type=str,
        default="core",
        help="Module name to load checkpoint, should be on python path (here: core or hf)",
    )
    parser.add_argument(
        "--saver",
        type=str,
        default="core",
        help="Module name to save checkpoint, should be on python path (here: core or hf)",
    )
    parser.add_argument(
        "--load-dir", type=str, required=True, help="Directory to load model checkpoint from"
    )
    parser.add_argument(
        "--save-dir", type=str, required=True, help="Directory to save model checkpoint to"
    )
    parser.add_argument(
        "--max-queue-size",
        type=int,
        default=50,
        help="Maximum number of tensors in the queue",
    )
    group = parser.add_argument_group(title="vocabulary and tokenizer")
    group.add_argument(
        "--true-vocab-size",
        type=int,
        default=None,
        help="original size of vocab, if specified will trim padding from embedding table.",
    )
    group.add_argument(
        "--make-vocab-size-divisible-by",
        type=int,
        default=None,
        help="Pad the vocab size to be divisible by this value (default: the checkpoint's, "
        "else 128)",
    )
    group.add_argument(
        "--tokenizer-model",
        type=str,
        default=None,
        help="Tokenizer model file or HF tokenizer directory: recorded in the core saver's "
        "args, copied into an hf saver's directory",
    )
    return parser


def build_parser(argv: list[str] | None) -> argparse.ArgumentParser:
    """The parser with the groups of the plugins that ``argv`` names (as the original adds
    them after a first pass)."""
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("--loader", default="core")
    first.add_argument("--saver", default="core")
    known, _ = first.parse_known_args(argv)
    parser = _base_parser()
    loader(known.loader).add_arguments(parser.add_argument_group(title=f"loader {known.loader}"))
    saver(known.saver).add_arguments(parser.add_argument_group(title=f"saver {known.saver}"))
    return parser
