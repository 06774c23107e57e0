"""Write checkpoints in the original's legacy ``--ckpt-format torch`` layout.

The same contract ``legacy_reader`` reads: ``<dir>/iter_{it:07d}/mp_rank_{tp:02d}[_{pp:03d}]/
model_optim_rng.pt`` per model-parallel shard, then ``<dir>/latest_checkpointed_iteration.txt``
naming the iteration once every shard is on disk. A shard file is written to a temporary name
in its folder and renamed into place, so a crash never leaves a half-written
``model_optim_rng.pt`` behind and the tracker never names an incomplete iteration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gpt_ckpt.legacy_reader import (
    CHECKPOINT_FILENAME,
    TRACKER_FILENAME,
    iteration_dir,
    shard_dirname,
)

CHECKPOINT_VERSION = 3.0
"""The original's current ``checkpoint_version`` (QKV layout [s, b, ng, (np/ng + 2) * hn])."""


def shard_path(
    save_dir: str | Path, iteration: int, tp: int, pp: int | None = None, ep: int | None = None
) -> Path:
    """Where shard (tp, pp, ep) of ``iteration`` goes; ``pp``/``ep`` None when that size is 1."""
    return iteration_dir(save_dir, iteration) / shard_dirname(tp, pp, ep) / CHECKPOINT_FILENAME


def write_shard(path: str | Path, content: dict[str, Any]) -> Path:
    """``torch.save`` one shard atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        torch.save(content, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_tracker(save_dir: str | Path, iteration: int) -> Path:
    """Name ``iteration`` as the latest complete checkpoint (after every shard is written):
    written to a temporary name, flushed to disk, renamed, and the rename flushed too, so
    after a crash the tracker names either the old checkpoint or the new one."""
    tracker = Path(save_dir) / TRACKER_FILENAME
    partial = tracker.with_name(f".{TRACKER_FILENAME}.{os.getpid()}.partial")
    with open(partial, "w") as f:
        f.write(str(iteration))
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, tracker)
    directory = os.open(tracker.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return tracker
