"""`--load`: the weights of a checkpoint in the original's `--ckpt-format torch` layout (the
original's own, or ours) or in a sharded format (torch_dist, torch_dcp: any parallel layout
loads into any other, see `sharded_state`). The folder says which format it is, so a
checkpoint loads whatever `--ckpt-format` says. With `--finetune` only the model is loaded and the run starts at
iteration 0 with a fresh optimizer, scheduler and data; without it the run resumes
(`checkpointing.Checkpointer.resume` restores the optimizer, scheduler, RNG and counters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from gpt_ckpt.dist_dir import detect_format, load_sharded, read_common, saved_object_keys
from gpt_ckpt.global_tensors import global_tensor_shapes
from gpt_ckpt.legacy_reader import (
    TRACKER_FILENAME,
    LegacyCheckpoint,
    LegacyCheckpointError,
    iteration_dir,
    read_legacy_checkpoint,
    read_tracker,
)
from gpt_ckpt.sharded import ShardedCheckpointError
from gpt_models.original_names import load_original_state_dict
from gpt_parallel.collectives import all_gather_object

from .errors import ArgsError
from .run_config import RunConfig
from .sharded_state import OPTIMIZER_PREFIX, load_model

Log = Callable[[str], None]


@dataclass
class ShardedCheckpoint:
    """A sharded checkpoint folder being loaded: its common state and where it is."""

    path: Path
    format: str
    common: dict[str, Any] = field(repr=False)
    object_keys: frozenset[str] = frozenset()

    @property
    def args(self) -> Any:
        return self.common.get("args")

    @property
    def iteration(self) -> int:
        return int(self.common.get("iteration", 0))


@dataclass(frozen=True)
class _Coordinates:
    """Where this rank sits, as far as describing the model blocks it reads needs (the load
    runs before the ParallelState reaches the trainer). Loading writes nothing, so the
    main-replica flags do not matter: a data-parallel rank of 1 marks every block a copy."""

    tp_rank: int
    tp_size: int
    dp_rank: int = 1
    dp_size: int = 2
    cp_rank: int = 0


def non_persistent_dir(run: RunConfig) -> Path:
    """Where global non-persistent checkpoints go: `--non-persistent-global-ckpt-dir`, else
    `{save}/non_persistent` (`{load}/non_persistent` for a run that only loads)."""
    c = run.checkpoint
    if c.non_persistent_global_ckpt_dir:
        return Path(c.non_persistent_global_ckpt_dir)
    return Path(c.save or c.load or ".") / "non_persistent"


def _newest(run: RunConfig) -> Path:
    """`--load`, or the non-persistent folder when its checkpoint is at least as recent (the
    original's rule; only with `--non-persistent-ckpt-type global`)."""
    load_dir = Path(run.checkpoint.load)
    if run.checkpoint.non_persistent_ckpt_type != "global" or run.checkpoint.ckpt_step is not None:
        return load_dir
    other = non_persistent_dir(run)
    if not (other / TRACKER_FILENAME).is_file():
        return load_dir
    if not (load_dir / TRACKER_FILENAME).is_file():
        return other
    return other if read_tracker(other)[0] >= read_tracker(load_dir)[0] else load_dir


def _has_checkpoint(folder: Path) -> bool:
    return (folder / TRACKER_FILENAME).is_file()


def checkpoint_source(run: RunConfig) -> tuple[Path | None, str]:
    """The folder to load from and the flag that named it: `--load` (or its newer
    non-persistent twin), else `--pretrained-checkpoint` when `--load` holds no checkpoint (the
    original then finetunes from it)."""
    c = run.checkpoint
    if c.load:
        try:
            load_dir = _newest(run)
        except LegacyCheckpointError as err:
            raise ArgsError(f"--load {c.load}: {err}") from None
        if _has_checkpoint(load_dir) or not c.pretrained_checkpoint:
            return load_dir, f"--load {c.load}"
    if c.pretrained_checkpoint:
        pretrained = Path(c.pretrained_checkpoint)
        if not _has_checkpoint(pretrained):
            raise ArgsError(
                f"--pretrained-checkpoint {pretrained}: no checkpoint there ({TRACKER_FILENAME} "
                f"is missing){' and none in --load ' + c.load if c.load else ''}"
            )
        return pretrained, f"--pretrained-checkpoint {pretrained}"
    return None, ""


def finetunes(run: RunConfig) -> bool:
    """`--finetune`, or the weights come from `--pretrained-checkpoint` (only the model loads,
    and the run starts at iteration 0, as in the original)."""
    if run.checkpoint.finetune:
        return True
    _, flag = checkpoint_source(run)
    return flag.startswith("--pretrained-checkpoint")


def check_load_flags(run: RunConfig) -> None:
    """Refuse, before any work, what `--load` cannot do yet (nothing now: every format that
    `--save` writes loads, and the folder says which it is)."""
    return None


def load_pretrained_weights(
    model: torch.nn.Module,
    run: RunConfig,
    *,
    tp_rank: int,
    pp_rank: int,
    log: Log,
    warn: Log,
    ep_rank: int = 0,
) -> LegacyCheckpoint | None:
    """Load this rank's model shard from `--load` (or `--pretrained-checkpoint`); returns the
    checkpoint read (None when there is none and the run starts from random weights)."""
    load_dir, source = checkpoint_source(run)
    if load_dir is None:
        return None
    if source.startswith("--pretrained-checkpoint") and run.checkpoint.load:
        log(
            f"Checkpoint file not found in load directory {run.checkpoint.load} attempting to "
            f"finetune with checkpoint in {run.checkpoint.pretrained_checkpoint}"
        )
    tracker = load_dir / TRACKER_FILENAME
    if not tracker.is_file():
        if run.checkpoint.exit_on_missing_checkpoint:
            raise ArgsError(
                f"--load {run.checkpoint.load}: no checkpoint there ({TRACKER_FILENAME} is missing) and "
                "--exit-on-missing-checkpoint is set"
            )
        warn(f"WARNING: could not find the metadata file {tracker}")
        warn("    will not load any checkpoints and will start from random")
        return None
    try:
        iteration, release = read_tracker(load_dir)
        if run.checkpoint.ckpt_step is not None:
            iteration, release = run.checkpoint.ckpt_step, False
        fmt = detect_format(iteration_dir(load_dir, iteration, release))
        if fmt == "torch":
            checkpoint = read_legacy_checkpoint(
                load_dir,
                tp_rank=tp_rank,
                pp_rank=pp_rank,
                ep_rank=ep_rank,
                iteration=run.checkpoint.ckpt_step,
                expert_parallel=run.expert.expert_model_parallel_size > 1,
            )
            log(f" loading checkpoint from {load_dir} at iteration {checkpoint.iteration}")
            load_original_state_dict(model, checkpoint.model, strict=True)
        else:
            checkpoint = _load_sharded_weights(
                model, iteration_dir(load_dir, iteration, release), fmt, run, tp_rank, log
            )
    except (LegacyCheckpointError, ShardedCheckpointError, KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArgsError(f"{source}: {first}") from None
    log(
        f"  successfully loaded checkpoint from {load_dir} [ t {tp_rank + 1}/"
        f"{run.distributed.tensor_model_parallel_size}, p {pp_rank + 1}/"
        f"{run.distributed.pipeline_model_parallel_size} ] at iteration {checkpoint.iteration}"
    )
    return checkpoint


def _load_sharded_weights(
    model: torch.nn.Module, folder: Path, fmt: str, run: RunConfig, tp_rank: int, log: Log
) -> ShardedCheckpoint:
    """Fill this rank's parameters from the overlapping blocks of a sharded checkpoint."""
    if run.expert.expert_model_parallel_size > 1:
        raise ShardedCheckpointError(
            f"{folder}: loading a {fmt} checkpoint with --expert-model-parallel-size "
            f"{run.expert.expert_model_parallel_size} is not implemented yet"
        )
    common = read_common(folder)
    checkpoint = ShardedCheckpoint(folder, fmt, common, frozenset(saved_object_keys(folder)))
    log(f" loading {fmt} checkpoint from {folder.parent} at iteration {checkpoint.iteration}")
    here = _Coordinates(tp_rank, run.distributed.tensor_model_parallel_size)
    strictness = run.checkpoint.dist_ckpt_strictness

    def read(blocks: list) -> None:
        load_sharded(folder, apply_strictness(blocks, folder, strictness, log))

    load_model(model, here, read)
    return checkpoint


def apply_strictness(blocks: list, folder: Path, strictness: str, log: Log) -> list:
    """`--dist-ckpt-strictness`: what to do about model keys this run asks for that the
    checkpoint lacks ("missing"), and ones the checkpoint has that no rank asks for
    ("unexpected", found over every rank). Returns the blocks to load: a missing key stops
    the load unless the mode logs or ignores it (`log_all`, `return_all`, `ignore_all`:
    the parameter keeps its initial value). The `return_*` modes log what the original
    returns to its caller."""
    if strictness == "ignore_all":
        saved = set(global_tensor_shapes(folder))
        return [b for b in blocks if b.key in saved]
    saved = {k for k in global_tensor_shapes(folder) if not k.startswith(OPTIMIZER_PREFIX)}
    wanted = {b.key for b in blocks}
    missing = sorted(wanted - saved)
    unexpected: list[str] = []
    if strictness != "assume_ok_unexpected":
        world = dist.group.WORLD if dist.is_initialized() else None
        everyone = set().union(*all_gather_object(sorted(wanted), world))
        unexpected = sorted(saved - everyone)
    if unexpected:
        text = f"{folder}: keys no rank of this run loads: {', '.join(unexpected)}"
        if strictness.startswith("raise"):
            raise ShardedCheckpointError(text)
        if strictness != "assume_ok_unexpected":
            log(f"WARNING: {text}")
    if not missing:
        return blocks
    text = f"{folder}: the checkpoint holds none of {', '.join(missing)}"
    if strictness in ("log_all", "return_all"):
        log(f"WARNING: {text}; they keep their initial values")
        return [b for b in blocks if b.key not in missing]
    raise ShardedCheckpointError(text)
