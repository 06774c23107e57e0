"""One error type for everything a user can get wrong, and the file checks that raise it.

Every message is one line that names the flag and the path, so a bad command line fails
with a sentence instead of a traceback from deep inside a tokenizer library.
"""

from __future__ import annotations

import json
import os
from typing import Any


class TokenizerError(ValueError):
    """A tokenizer cannot be built from the given settings or files (one-line message)."""


def require(value: object, flag: str, tokenizer_type: str) -> None:
    """Fail when a flag that this tokenizer type needs was not given."""
    if value is None:
        raise TokenizerError(f"--tokenizer-type {tokenizer_type} needs {flag}")


def check_file(flag: str, path: str | os.PathLike[str]) -> str:
    """Return `path` as a string if it is a readable regular file, else raise naming the flag."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TokenizerError(f"{flag}: no such file: {path}")
    if os.path.isdir(path):
        raise TokenizerError(f"{flag}: is a directory, expected a file: {path}")
    if not os.access(path, os.R_OK):
        raise TokenizerError(f"{flag}: cannot read file: {path}")
    return path


def check_file_or_dir(flag: str, path: str | os.PathLike[str]) -> str:
    """Return `path` as a string if it is a readable file or directory, else raise naming the flag."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TokenizerError(f"{flag}: no such file or directory: {path}")
    if not os.access(path, os.R_OK):
        raise TokenizerError(f"{flag}: cannot read: {path}")
    return path


def read_text(flag: str, path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file, turning I/O and decoding failures into one-line errors."""
    path = check_file(flag, path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise TokenizerError(
            f"{flag}: not UTF-8 text: {path} ({e.reason} at byte {e.start})"
        ) from e
    except OSError as e:
        raise TokenizerError(f"{flag}: cannot read {path}: {e.strerror or e}") from e


def read_json(flag: str, path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; a syntax error is one line naming the flag, the path and the line."""
    try:
        return json.loads(read_text(flag, path))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{flag}: not JSON: {path} ({e.msg} at line {e.lineno})") from e
