"""Read the original's legacy ``--ckpt-format torch`` checkpoints.

Layout: ``<dir>/latest_checkpointed_iteration.txt`` (an iteration number or ``release``) and
``<dir>/iter_{it:07d}/`` (or ``release/``) holding one ``mp_rank_{tp:02d}[_{pp:03d}][_{ep:03d}]/
model_optim_rng.pt`` per model-parallel shard (the pp part only when PP > 1, the ep part only
when EP > 1). Each file is a ``torch.save``d dict with ``args`` (the original's argparse
Namespace), ``checkpoint_version``, ``iteration``, ``model`` (or ``model0``, ``model1``, ... with
virtual pipeline stages), ``optimizer``, ``opt_param_scheduler``, ``rng_state`` and
``num_floating_point_operations_so_far``. The model entry is that shard's local TP slice.

Loading uses ``weights_only=True`` with stand-ins for the original's classes; ``trust=True``
allows a full unpickler (needed only for files holding classes we have no stand-in for).
"""

from __future__ import annotations

import argparse
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpt_ckpt.megatron_pickle import megatron_pickle_module, safe_globals

TRACKER_FILENAME = "latest_checkpointed_iteration.txt"
CHECKPOINT_FILENAME = "model_optim_rng.pt"
_SHARD_DIR = re.compile(r"^mp_rank_(\d{2})(?:_(\d{3}))?(?:_(\d{3}))?$")


class LegacyCheckpointError(ValueError):
    """The directory or file is not a readable legacy checkpoint; the message names it."""


@dataclass(frozen=True)
class ShardKey:
    """Model-parallel coordinates of one shard file."""

    tp: int
    pp: int = 0
    ep: int = 0


@dataclass
class LegacyCheckpoint:
    """One shard file's content, split into the parts callers want."""

    path: Path
    args: argparse.Namespace | None
    iteration: int
    checkpoint_version: float | None
    models: list[dict[str, Any]]
    """``model`` as a one-element list, or ``model0``, ``model1``, ... in order."""
    raw: dict[str, Any] = field(repr=False)
    """The whole loaded dict (optimizer, scheduler, rng state, ...)."""

    @property
    def model(self) -> dict[str, Any]:
        """The model state dict (the only one without virtual pipeline stages)."""
        if len(self.models) != 1:
            raise LegacyCheckpointError(
                f"{self.path} holds {len(self.models)} virtual-pipeline model chunks; use .models"
            )
        return self.models[0]


def read_tracker(load_dir: str | Path) -> tuple[int, bool]:
    """(iteration, release) from ``latest_checkpointed_iteration.txt``; release loads as 0."""
    tracker = Path(load_dir) / TRACKER_FILENAME
    if not tracker.is_file():
        raise LegacyCheckpointError(f"no {TRACKER_FILENAME} in {load_dir}")
    text = tracker.read_text().strip()
    if text == "release":
        return 0, True
    try:
        return int(text), False
    except ValueError:
        raise LegacyCheckpointError(
            f"{tracker} holds {text!r}, expected an iteration number or 'release'"
        ) from None


def iteration_dir(load_dir: str | Path, iteration: int, release: bool = False) -> Path:
    """``iter_{iteration:07d}`` or ``release`` under ``load_dir``."""
    return Path(load_dir) / ("release" if release else f"iter_{iteration:07d}")


def shard_dirname(tp: int, pp: int | None = None, ep: int | None = None) -> str:
    """``mp_rank_{tp:02d}``, with ``_{pp:03d}`` when PP > 1 and ``_{ep:03d}`` when EP > 1."""
    name = f"mp_rank_{tp:02d}"
    if pp is not None:
        name += f"_{pp:03d}"
    if ep is not None:
        name += f"_{ep:03d}"
    return name


def list_shards(iter_dir: str | Path, *, expert_parallel: bool = False) -> dict[ShardKey, Path]:
    """Every ``mp_rank_*/model_optim_rng.pt`` in an iteration directory, by coordinates.

    A single 3-digit suffix is the pipeline rank, or the expert rank when the run had PP = 1
    and EP > 1 (``expert_parallel``); the name alone cannot tell the two apart.
    """
    iter_dir = Path(iter_dir)
    if not iter_dir.is_dir():
        raise LegacyCheckpointError(f"checkpoint directory {iter_dir} does not exist")
    shards: dict[ShardKey, Path] = {}
    for child in sorted(iter_dir.iterdir()):
        match = _SHARD_DIR.match(child.name)
        if not match or not (child / CHECKPOINT_FILENAME).is_file():
            continue
        tp, pp, ep = match.groups()
        if expert_parallel and ep is None:
            pp, ep = None, pp
        shards[ShardKey(int(tp), int(pp or 0), int(ep or 0))] = child / CHECKPOINT_FILENAME
    if not shards:
        raise LegacyCheckpointError(f"no mp_rank_*/{CHECKPOINT_FILENAME} in {iter_dir}")
    return shards


def load_file(path: str | Path, *, trust: bool = False) -> dict[str, Any]:
    """torch.load one shard file onto the CPU, without the original installed."""
    path = Path(path)
    if not path.is_file():
        raise LegacyCheckpointError(f"checkpoint file {path} does not exist")
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not trust:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise LegacyCheckpointError(
                f"{path} needs classes weights_only loading does not allow ({first_line}); "
                "pass trust=True only if you trust the file"
            ) from None
    return torch.load(
        path, map_location="cpu", weights_only=False, pickle_module=megatron_pickle_module
    )


def _models_of(state: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    if "model" in state:
        return [state["model"]]
    chunks = sorted(
        (int(key[5:]), value)
        for key, value in state.items()
        if key.startswith("model") and key[5:].isdigit()
    )
    if not chunks:
        raise LegacyCheckpointError(f"{path} holds no 'model' entry (keys: {sorted(state)})")
    return [value for _, value in chunks]


def read_checkpoint_file(path: str | Path, *, trust: bool = False) -> LegacyCheckpoint:
    """Load one ``model_optim_rng.pt`` and split it into args / iteration / models."""
    path = Path(path)
    state = load_file(path, trust=trust)
    if not isinstance(state, dict):
        raise LegacyCheckpointError(f"{path} does not hold a checkpoint dict")
    iteration = state.get("iteration", state.get("total_iters", 0))
    return LegacyCheckpoint(
        path=path,
        args=state.get("args"),
        iteration=int(iteration),
        checkpoint_version=state.get("checkpoint_version"),
        models=_models_of(state, path),
        raw=state,
    )


def read_legacy_checkpoint(
    load_dir: str | Path,
    *,
    tp_rank: int = 0,
    pp_rank: int = 0,
    ep_rank: int = 0,
    iteration: int | None = None,
    expert_parallel: bool = False,
    trust: bool = False,
) -> LegacyCheckpoint:
    """Read one shard of the checkpoint named by the tracker (or ``iteration``)."""
    if iteration is None:
        iteration, release = read_tracker(load_dir)
    else:
        release = False
    shards = list_shards(
        iteration_dir(load_dir, iteration, release), expert_parallel=expert_parallel
    )
    key = ShardKey(tp_rank, pp_rank, ep_rank)
    if key not in shards:
        have = ", ".join(f"tp{k.tp}/pp{k.pp}/ep{k.ep}" for k in shards)
        raise LegacyCheckpointError(
            f"no shard tp{tp_rank}/pp{pp_rank}/ep{ep_rank} in {load_dir} (have {have})"
        )
    return read_checkpoint_file(shards[key], trust=trust)


def read_all_shards(
    load_dir: str | Path,
    *,
    iteration: int | None = None,
    expert_parallel: bool = False,
    trust: bool = False,
) -> dict[ShardKey, LegacyCheckpoint]:
    """Read every shard of one checkpoint iteration."""
    if iteration is None:
        iteration, release = read_tracker(load_dir)
    else:
        release = False
    shards = list_shards(
        iteration_dir(load_dir, iteration, release), expert_parallel=expert_parallel
    )
    return {key: read_checkpoint_file(path, trust=trust) for key, path in shards.items()}


def tensor_parallel_model_shards(
    load_dir: str | Path, *, pp_rank: int = 0, iteration: int | None = None, trust: bool = False
) -> list[dict[str, Any]]:
    """The model state dicts of TP ranks 0..TP-1 of one pipeline stage, in TP order."""
    shards = read_all_shards(load_dir, iteration=iteration, trust=trust)
    stage = sorted((k.tp, ckpt) for k, ckpt in shards.items() if k.pp == pp_rank and k.ep == 0)
    if not stage:
        raise LegacyCheckpointError(f"no shards of pipeline stage {pp_rank} in {load_dir}")
    ranks = [tp for tp, _ in stage]
    if ranks != list(range(len(ranks))):
        raise LegacyCheckpointError(f"{load_dir}: tensor-parallel shards {ranks} are incomplete")
    return [ckpt.model for _, ckpt in stage]
