"""`--save` and resuming a run with `--load` (without `--finetune`), in the original's
`--ckpt-format torch` layout: one `model_optim_rng.pt` per (tensor, pipeline) shard, written by
its data-parallel rank 0, then the tracker file written by global rank 0.

A checkpoint holds what the original's holds (§4.2 of the reference): `args` (the run's flags
as the original's Namespace, with the sample counters), `checkpoint_version` 3.0, `iteration`,
`model` (or `model0`, `model1`, ... for virtual pipeline stages), `optimizer` and
`opt_param_scheduler` (unless `--no-save-optim`), `rng_state` (unless `--no-save-rng`) and
`num_floating_point_operations_so_far`. Resuming restores all of them, so a run stopped at
iteration k and resumed continues exactly as if it had not stopped.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from gpt_ckpt.legacy_reader import LegacyCheckpoint, load_file
from gpt_ckpt.legacy_writer import CHECKPOINT_VERSION, shard_path, write_shard, write_tracker
from gpt_parallel.collectives import all_gather_object, group_rank, group_size
from gpt_parallel.parallel_state import ParallelState
from gpt_parallel.random import RNGStatesTracker, get_rng_state, set_rng_state

from .errors import ArgsError
from .run_config import RunConfig

Log = Callable[[str], None]


def check_save_flags(run: RunConfig) -> None:
    """Refuse, before any work, what `--save` cannot write yet."""
    c = run.checkpoint
    if not c.save:
        return
    if c.ckpt_format != "torch":
        raise ArgsError(
            f"--save with --ckpt-format {c.ckpt_format}: only --ckpt-format torch checkpoints "
            "can be written yet"
        )
    if run.distributed.use_torch_fsdp2 or run.distributed.use_megatron_fsdp:
        raise ArgsError(
            "--save with --use-torch-fsdp2 / --use-megatron-fsdp needs a sharded format "
            "(--ckpt-format fsdp_dtensor or torch_dist), not implemented yet"
        )


def _model_entries(model: torch.nn.Module) -> dict[str, Any]:
    """`model`, or `model0`, `model1`, ... for a pipeline rank's virtual stages."""
    chunks = list(model) if isinstance(model, torch.nn.ModuleList) else [model]
    if len(chunks) == 1:
        return {"model": chunks[0].state_dict()}
    return {f"model{i}": chunk.state_dict() for i, chunk in enumerate(chunks)}


@dataclass
class Checkpointer:
    """Writes this rank's shard of a checkpoint and restores one."""

    run: RunConfig
    state: ParallelState
    tracker: RNGStatesTracker
    log: Log

    @property
    def writes_shard(self) -> bool:
        """Data- (and context-) parallel rank 0 of each model-parallel shard writes its file."""
        return self.state.dp_rank == 0 and self.state.cp_rank == 0

    def _shard_path(self, iteration: int):
        s = self.state
        pp = s.pp_rank if s.pp_size > 1 else None
        return shard_path(self.run.checkpoint.save, iteration, s.tp_rank, pp)

    @property
    def sharded_optimizer(self) -> bool:
        return self.run.distributed.use_distributed_optimizer

    def save(self, trainer: Any) -> None:
        """Write iteration `trainer.state.iteration` under `--save`."""
        c = self.run.checkpoint
        iteration = trainer.state.iteration
        self.log(f"saving checkpoint at iteration {iteration:7d} to {c.save} in torch format")
        shards = None
        if self.sharded_optimizer and not c.no_save_optim:
            shards = all_gather_object(trainer.optimizer.state_dict(), trainer.ddp.dp_group)
        if self.writes_shard:
            path = self._shard_path(iteration)
            write_shard(path, self.content(trainer))
            if shards is not None:
                write_shard(path.with_name(DISTRIBUTED_OPTIMIZER_FILENAME), {"shards": shards})
        if dist.is_initialized():
            dist.barrier()
        if self.state.rank == 0:
            write_tracker(c.save, iteration)
            if c.save_retain_interval:
                remove_unretained(c.save, iteration, c.save_retain_interval)
        if dist.is_initialized():
            dist.barrier()
        s = self.state
        self.log(
            f"  successfully saved checkpoint from iteration {iteration:7d} to {c.save} "
            f"[ t {s.tp_rank + 1}/{s.tp_size}, p {s.pp_rank + 1}/{s.pp_size} ]"
        )

    def content(self, trainer: Any) -> dict[str, Any]:
        """This shard's dict, with the original's keys."""
        c = self.run.checkpoint
        t = trainer.state
        args = self.run.to_original_args()
        args.iteration = t.iteration
        args.consumed_train_samples = t.consumed_train_samples
        args.skipped_train_samples = t.skipped_train_samples
        args.consumed_valid_samples = t.consumed_valid_samples
        content: dict[str, Any] = {
            "args": args,
            "checkpoint_version": CHECKPOINT_VERSION,
            "iteration": t.iteration,
            **_model_entries(trainer.model),
        }
        if not c.no_save_optim:
            content["optimizer"] = (
                {"param_groups": _hyperparameters(trainer.optimizer)}
                if self.sharded_optimizer
                else trainer.optimizer.state_dict()
            )
            content["opt_param_scheduler"] = trainer.scheduler.state_dict()
        if not c.no_save_rng:
            content["rng_state"] = self._rng_states()
        content["num_floating_point_operations_so_far"] = t.floating_point_operations_so_far
        return content

    def _rng_states(self) -> list[dict[str, Any]]:
        """One entry, or one per data-parallel rank with --data-parallel-random-init."""
        mine = get_rng_state(self.tracker)
        if not self.run.seed.data_parallel_random_init:
            return [mine]
        return all_gather_object(mine, self.state.group("dp"))

    def _load_sharded_optimizer(self, checkpoint: LegacyCheckpoint, trainer: Any) -> None:
        """This data-parallel rank's shard of the optimizer state, from `distrib_optim.pt`."""
        c = self.run.checkpoint
        path = checkpoint.path.with_name(DISTRIBUTED_OPTIMIZER_FILENAME)
        if not path.is_file():
            raise ArgsError(
                f"--load {c.load}: {path} is missing (the checkpoint was saved without the "
                "distributed optimizer's state); add --no-load-optim"
            )
        shards = load_file(path)["shards"]
        rank, size = group_rank(trainer.ddp.dp_group), group_size(trainer.ddp.dp_group)
        if len(shards) != size:
            raise ArgsError(
                f"--load {c.load}: the distributed optimizer state was saved by {len(shards)} "
                f"data-parallel ranks, this run has {size}; resharding it is not implemented "
                "yet (add --no-load-optim to start a fresh optimizer)"
            )
        try:
            trainer.optimizer.load_state_dict(shards[rank])
        except ValueError as err:
            raise ArgsError(f"--load {c.load}: {err}") from None

    def resume(self, checkpoint: LegacyCheckpoint, trainer: Any) -> None:
        """Restore the optimizer, scheduler, RNG and counters of a run (not `--finetune`)."""
        c = self.run.checkpoint
        raw = checkpoint.raw
        if not c.no_load_optim:
            for key in ("optimizer", "opt_param_scheduler"):
                if key not in raw:
                    raise ArgsError(
                        f"--load {c.load}: the checkpoint holds no {key} state; add "
                        "--no-load-optim (or --finetune) to start a fresh optimizer"
                    )
            if self.sharded_optimizer:
                self._load_sharded_optimizer(checkpoint, trainer)
            else:
                trainer.optimizer.load_state_dict(raw["optimizer"])
            trainer.scheduler.load_state_dict(raw["opt_param_scheduler"])
        if not c.no_load_rng:
            states = raw.get("rng_state")
            if not states:
                raise ArgsError(
                    f"--load {c.load}: the checkpoint holds no rng_state; add --no-load-rng"
                )
            index = self.state.dp_rank if self.run.seed.data_parallel_random_init else 0
            set_rng_state(states[min(index, len(states) - 1)], self.tracker)
        args = checkpoint.args
        t = trainer.state
        t.iteration = checkpoint.iteration
        t.consumed_train_samples = int(getattr(args, "consumed_train_samples", 0) or 0)
        t.skipped_train_samples = int(getattr(args, "skipped_train_samples", 0) or 0)
        t.consumed_valid_samples = int(getattr(args, "consumed_valid_samples", 0) or 0)
        t.floating_point_operations_so_far = float(
            raw.get("num_floating_point_operations_so_far", 0.0)
        )


DISTRIBUTED_OPTIMIZER_FILENAME = "distrib_optim.pt"
"""Beside each shard's model_optim_rng.pt, as the original's torch format names it. Here it holds
every data-parallel rank's own shard state (``DistributedOptimizer.state_dict``), in rank
order, so a run with the same layout resumes exactly; the original gathers the shards into
flat per-bucket tensors instead, so the two programs do not read each other's file."""


def _hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    """The param groups' settings without their tensors (the main file's optimizer entry)."""
    return [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]


def remove_unretained(save_dir: str, latest: int, retain_interval: int) -> list[Path]:
    """`--save-retain-interval N`: delete the checkpoints of iterations that are not multiples
    of N, except the latest one (which the tracker names). Returns the removed folders."""
    removed = []
    for folder in sorted(Path(save_dir).glob("iter_*")):
        suffix = folder.name[len("iter_") :]
        if not suffix.isdigit():
            continue
        iteration = int(suffix)
        if iteration != latest and iteration % retain_interval:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed
