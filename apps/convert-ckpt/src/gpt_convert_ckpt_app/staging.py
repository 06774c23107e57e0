"""Write the output to a hidden folder beside ``--save-dir`` and rename it at the end, so a
failed or interrupted conversion never leaves a directory that looks like a checkpoint."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import ArgsError


def check_save_dir(save_dir: Path) -> None:
    """Refuse a --save-dir that holds files, or that cannot be created, before any work."""
    if save_dir.exists() and (not save_dir.is_dir() or any(save_dir.iterdir())):
        raise ArgsError(f"--save-dir {save_dir} exists and is not an empty directory")
    parent = save_dir.absolute().parent
    while not parent.exists():  # missing parents are created, as the original's saver does
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ArgsError(f"--save-dir {save_dir}: the directory {parent} is not writable")


@contextlib.contextmanager
def staged(save_dir: Path) -> Iterator[Path]:
    """Yield a fresh folder to write into; on success it becomes ``save_dir``, on any error
    it is removed."""
    save_dir = save_dir.absolute()
    temp = save_dir.with_name(f".{save_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    try:
        yield temp
        if save_dir.is_dir():
            save_dir.rmdir()  # empty (checked before): replaced by the finished output
        os.replace(temp, save_dir)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
