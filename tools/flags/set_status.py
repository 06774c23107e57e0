"""Change the declared status of flags in the packages' config.py files.

    uv run --frozen python tools/flags/set_status.py effective --flag-a --flag-b ...
    uv run --frozen python tools/flags/set_status.py effective --from-file flags.txt

A flag's declaration is the `flag(...)` call whose names include it; its `status=` (and any
`reason=` for the old status) is rewritten. Run tools/flags/write_flag_docs.py afterwards.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ROOT.glob("packages/*/src/*/*config.py")) + sorted(
    ROOT.glob("apps/*/src/*/*config.py")
)
STATUS_NAMES = {
    "effective": "EFFECTIVE",
    "not-implemented": "NOT_IMPLEMENTED",
    "needs-gpu": "NEEDS_GPU",
    "no-effect": "NO_EFFECT",
}
CALL = re.compile(r"= flag\(\n(?P<body>.*?)\n    \)\n", re.S)


def set_status(flags: set[str], status: str, reason: str) -> set[str]:
    done: set[str] = set()
    for path in CONFIGS:
        text = path.read_text()

        def rewrite(match: re.Match[str]) -> str:
            body = match.group("body")
            names = set(re.findall(r'"(--[A-Za-z0-9_-]+)"', body))
            hit = names & flags
            if not hit:
                return match.group(0)
            done.update(hit)
            body = re.sub(r"\n\s*reason=(\"[^\"]*\"|\([^)]*\)),?", "", body)
            body = re.sub(r"status=[A-Z_]+", f"status={STATUS_NAMES[status]}", body)
            if reason:
                body = body.rstrip(",") + f",\n        reason={reason!r},"
            return f"= flag(\n{body}\n    )\n"

        new = CALL.sub(rewrite, text)
        if new != text:
            path.write_text(new)
        _ensure_imported(path, STATUS_NAMES[status])
    return done


def _ensure_imported(path: Path, name: str) -> None:
    """Add the status constant to the file's `from gpt_flags.flagspec import (...)`."""
    text = path.read_text()
    if f"status={name}" not in text:
        return
    block = re.search(r"from gpt_flags\.flagspec import \((.*?)\)", text, re.S)
    if block is None or re.search(rf"\b{name}\b", block.group(1)):
        return
    start = block.start(1)
    path.write_text(text[:start] + f"\n    {name}," + text[start:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("status", choices=sorted(STATUS_NAMES))
    parser.add_argument("flags", nargs="*")
    parser.add_argument("--from-file")
    parser.add_argument("--reason", default="")
    args, extra = parser.parse_known_args()
    flags = set(args.flags) | set(extra)
    if args.from_file:
        flags |= {
            line.split()[0]
            for line in Path(args.from_file).read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
    done = set_status(flags, args.status, args.reason)
    missing = sorted(flags - done)
    if missing:
        print(f"not found: {' '.join(missing)}", file=sys.stderr)
        return 1
    print(f"{len(done)} flags set to {args.status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
