"""The errors a user can cause, each printed as one line by `main` (exit code 2)."""

from __future__ import annotations


class PreprocessError(ValueError):
    """A bad flag, a missing file or an unusable input; the message names what and where."""


class InputError(PreprocessError):
    """A record of the input cannot be used: `<file>:<line>: <what>`."""

    def __init__(self, source: str, line: int, what: str) -> None:
        super().__init__(f"{source}:{line}: {what}")
        self.source = source
        self.line = line
        self.what = what
