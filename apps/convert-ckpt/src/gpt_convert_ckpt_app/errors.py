"""The errors a user can cause, each printed as one line by `main` (exit code 2)."""

from __future__ import annotations


class ArgsError(ValueError):
    """A bad flag, a missing or unreadable checkpoint, or sizes that do not fit; the message
    names the flag, file or value at fault."""
