"""From checked flags to a run: the table of contents of `pretrain`."""

from __future__ import annotations

import argparse
import os
import sys

from .validate import validate_args


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return torch.cuda.is_available()


def arguments_block(args: argparse.Namespace) -> str:
    """The original's printout of the arguments: name padded with dots to 48 columns, sorted."""
    lines = ["------------------------ arguments ------------------------"]
    for name in sorted(vars(args), key=str.lower):
        dots = "." * (48 - len(name))
        lines.append(f"  {name} {dots} {getattr(args, name)}")
    lines.append("-------------------- end of arguments ---------------------")
    return "\n".join(lines)


def run(args: argparse.Namespace, guard_flags) -> int:
    guard_flags(args, cuda_available(), warn=lambda text: print(text, file=sys.stderr))
    world_size = int(os.getenv("WORLD_SIZE", "1"))
    resolution = validate_args(args, world_size=world_size)
    for text in resolution.warnings:
        print(text, file=sys.stderr)
    for text in resolution.messages:
        print(text)
    print(arguments_block(resolution.args))
    return 0
