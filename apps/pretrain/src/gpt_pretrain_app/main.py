"""`pretrain`: parse and check every flag, then train (or print what it would do)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .errors import ArgsError


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import parse_args
    from .flag_status import guard_flags, status_table

    try:
        args = parse_args(argv)
        if args.flag_status:
            sys.stdout.write(status_table())
            return 0
        from .run import run

        return run(args, guard_flags)
    except ArgsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
