"""`--load`: the weights of a checkpoint in the original's `--ckpt-format torch` layout (the
original's own, or ours). With `--finetune` only the model is loaded and the run starts at
iteration 0 with a fresh optimizer, scheduler and data; without it the run resumes
(`checkpointing.Checkpointer.resume` restores the optimizer, scheduler, RNG and counters).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from gpt_ckpt.legacy_reader import (
    TRACKER_FILENAME,
    LegacyCheckpoint,
    LegacyCheckpointError,
    read_legacy_checkpoint,
)
from gpt_models.original_names import load_original_state_dict

from .errors import ArgsError
from .run_config import RunConfig

Log = Callable[[str], None]


def check_load_flags(run: RunConfig) -> None:
    """Refuse, before any work, what `--load` cannot do yet."""
    if not run.checkpoint.load:
        return
    if _looks_distributed(Path(run.checkpoint.load)):
        # Found whether or not --auto-detect-ckpt-format is given: say so instead of failing
        # later on a missing mp_rank_* file.
        raise ArgsError(
            f"--load {run.checkpoint.load}: a sharded (torch_dist / torch_dcp) checkpoint, not "
            "readable yet; only --ckpt-format torch checkpoints load"
        )


def _looks_distributed(load_dir: Path) -> bool:
    return any(load_dir.glob("*/metadata.json")) or any(load_dir.glob("*/*.distcp"))


def load_pretrained_weights(
    model: torch.nn.Module,
    run: RunConfig,
    *,
    tp_rank: int,
    pp_rank: int,
    log: Log,
    warn: Log,
) -> LegacyCheckpoint | None:
    """Load this rank's model shard from `--load`; returns the checkpoint read (None when
    there is none and the run starts from random weights)."""
    load_dir = Path(run.checkpoint.load)
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
        checkpoint = read_legacy_checkpoint(
            load_dir, tp_rank=tp_rank, pp_rank=pp_rank, iteration=run.checkpoint.ckpt_step
        )
        log(f" loading checkpoint from {run.checkpoint.load} at iteration {checkpoint.iteration}")
        load_original_state_dict(model, checkpoint.model, strict=True)
    except (LegacyCheckpointError, KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArgsError(f"--load {run.checkpoint.load}: {first}") from None
    log(
        f"  successfully loaded checkpoint from {run.checkpoint.load} [ t {tp_rank + 1}/"
        f"{run.distributed.tensor_model_parallel_size}, p {pp_rank + 1}/"
        f"{run.distributed.pipeline_model_parallel_size} ] at iteration {checkpoint.iteration}"
    )
    return checkpoint
