"""Command-line entry point."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("not implemented yet", file=sys.stderr)
    return 2
