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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from gpt_ckpt.async_save import AsyncWriter
from gpt_ckpt.dist_dir import load_sharded, publish, save_sharded, write_staging
from gpt_ckpt.legacy_reader import LegacyCheckpoint, iteration_dir, load_file
from gpt_ckpt.legacy_writer import CHECKPOINT_VERSION, shard_path, write_shard, write_tracker
from gpt_ckpt.sharded import ShardedCheckpointError, ShardedTensor
from gpt_parallel.collectives import all_gather_object, group_rank, group_size
from gpt_parallel.parallel_state import ParallelState
from gpt_parallel.random import RNGStatesTracker, get_rng_state, set_rng_state

from .checkpoint_load import ShardedCheckpoint, non_persistent_dir
from .errors import ArgsError
from .run_config import RunConfig
from .sharded_state import model_blocks, optimizer_load, optimizer_save_blocks, rng_object

Log = Callable[[str], None]

WRITABLE_FORMATS = ("torch", "torch_dist", "torch_dcp", "zarr", "fsdp_dtensor")
"""`--ckpt-format` values `--save` writes (torch: legacy files; the others: sharded, §4.4)."""


def check_save_flags(run: RunConfig) -> None:
    """Refuse, before any work, what `--save` cannot write yet."""
    c = run.checkpoint
    if c.non_persistent_save_interval:
        if c.non_persistent_ckpt_type != "global":
            raise ArgsError(
                f"--non-persistent-ckpt-type {c.non_persistent_ckpt_type}: only global "
                "non-persistent checkpoints are implemented"
            )
        if c.ckpt_format == "torch":
            raise ArgsError(
                "--non-persistent-save-interval needs a sharded --ckpt-format (torch_dist, ...)"
            )
    if not c.save:
        return
    if c.ckpt_format not in WRITABLE_FORMATS:
        raise ArgsError(
            f"--save with --ckpt-format {c.ckpt_format}: only --ckpt-format "
            f"{', '.join(WRITABLE_FORMATS)} checkpoints can be written yet"
        )
    if c.ckpt_format != "torch" and run.expert.expert_model_parallel_size > 1:
        raise ArgsError(
            f"--save with --ckpt-format {c.ckpt_format} and --expert-model-parallel-size "
            f"{run.expert.expert_model_parallel_size}: sharded checkpoints of expert-parallel "
            "runs are not implemented yet (use --ckpt-format torch)"
        )
    d = run.distributed
    if (d.use_torch_fsdp2 or d.use_megatron_fsdp) and c.ckpt_format == "torch":
        raise ArgsError(
            "--save with --use-torch-fsdp2 / --use-megatron-fsdp needs a sharded "
            "--ckpt-format (torch_dcp, fsdp_dtensor or torch_dist), not torch"
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
    _writer: AsyncWriter | None = field(default=None, init=False)
    _pending: tuple[int, Path, dict[str, Any], Path, bool] | None = field(default=None, init=False)

    @property
    def writes_shard(self) -> bool:
        """Data- (and context-) parallel rank 0 of each model-parallel shard writes its file;
        with experts, expert-data-parallel rank 0 of each expert-parallel shard (as the original)."""
        if self.state.ep_size > 1:
            return self.state.edp_rank == 0
        return self.state.dp_rank == 0 and self.state.cp_rank == 0

    def _shard_path(self, iteration: int):
        s = self.state
        pp = s.pp_rank if s.pp_size > 1 else None
        ep = s.ep_rank if s.ep_size > 1 else None
        return shard_path(self.run.checkpoint.save, iteration, s.tp_rank, pp, ep)

    @property
    def sharded_optimizer(self) -> bool:
        return self.run.distributed.use_distributed_optimizer

    def non_persistent_due(self, iteration: int) -> bool:
        """Whether `--non-persistent-save-interval` asks for a checkpoint at `iteration`."""
        interval = self.run.checkpoint.non_persistent_save_interval
        return bool(interval) and iteration % interval == 0

    def save(self, trainer: Any, *, non_persistent: bool = False) -> None:
        """Write iteration `trainer.state.iteration` under `--save` (or, `non_persistent`,
        under the non-persistent folder, replacing the one there)."""
        c = self.run.checkpoint
        iteration = trainer.state.iteration
        base = non_persistent_dir(self.run) if non_persistent else Path(c.save)
        self.log(
            f"saving checkpoint at iteration {iteration:7d} to {base} in {c.ckpt_format} format"
        )
        if non_persistent:
            self.maybe_finalize(blocking=True)  # never delete what is being written
            if self.state.rank == 0:
                for old in base.glob("iter_*"):
                    shutil.rmtree(old, ignore_errors=True)
        if c.ckpt_format == "torch":
            self._save_legacy(trainer, iteration)
        elif c.async_save:
            self._submit_async(trainer, iteration, base, non_persistent)
            return  # maybe_finalize finishes it
        else:
            self._save_sharded(trainer, iteration, base)
        self._finish(iteration, base, non_persistent)

    def _finish(self, iteration: int, base: Path, non_persistent: bool) -> None:
        """Once every rank's files are in place: the tracker, retention, the log line."""
        c = self.run.checkpoint
        if dist.is_initialized():
            dist.barrier()
        if self.state.rank == 0:
            write_tracker(base, iteration)
            if c.save_retain_interval and not non_persistent:
                remove_unretained(c.save, iteration, c.save_retain_interval)
        if dist.is_initialized():
            dist.barrier()
        s = self.state
        self.log(
            f"  successfully saved checkpoint from iteration {iteration:7d} to {base} "
            f"[ t {s.tp_rank + 1}/{s.tp_size}, p {s.pp_rank + 1}/{s.pp_size} ]"
        )

    def _save_legacy(self, trainer: Any, iteration: int) -> None:
        """One `model_optim_rng.pt` per model-parallel shard (and `distrib_optim.pt`)."""
        c = self.run.checkpoint
        shards = None
        if self.sharded_optimizer and not c.no_save_optim:
            shards = all_gather_object(trainer.optimizer.state_dict(), trainer.ddp.dp_group)
        if self.writes_shard:
            path = self._shard_path(iteration)
            write_shard(path, self.content(trainer))
            if shards is not None:
                write_shard(path.with_name(DISTRIBUTED_OPTIMIZER_FILENAME), {"shards": shards})

    def _save_sharded(self, trainer: Any, iteration: int, base: Path) -> None:
        """Every rank declares its blocks of the global model / optimizer state (collective)."""
        c = self.run.checkpoint
        blocks, objects, common = self._sharded_content(trainer)
        try:
            save_sharded(iteration_dir(base, iteration), c.ckpt_format, blocks, objects, common)
        except ShardedCheckpointError as err:
            raise ArgsError(f"--save {c.save}: {err}") from None

    def _submit_async(self, trainer: Any, iteration: int, base: Path, non_persistent: bool) -> None:
        """`--async-save`: stage this rank's blocks on the CPU now, write them in the
        background (the previous asynchronous save is finished first)."""
        c = self.run.checkpoint
        self.maybe_finalize(blocking=True)
        blocks, objects, common = self._sharded_content(trainer)
        staged = [
            ShardedTensor(
                b.key, b.data.detach().to("cpu", copy=True), b.global_shape, b.global_offset,
                b.main_replica,
            )
            for b in blocks
        ]  # fmt: skip
        if self._writer is None:
            self._writer = AsyncWriter(persistent=c.use_persistent_ckpt_worker)
        folder, fmt, group = iteration_dir(base, iteration), c.ckpt_format, self._writer.group
        self._writer.submit(
            lambda: write_staging(folder, fmt, staged, objects, common, group=group)
        )
        self._pending = (iteration, folder, common, base, non_persistent)

    def maybe_finalize(self, *, blocking: bool = False) -> None:
        """Finish the pending asynchronous save once every rank has written its part (polled
        each iteration; ``blocking`` waits, as at the end of training). Collective."""
        if self._writer is None or not self._writer.pending:
            return
        if blocking:
            self._writer.collect()
        else:
            done = torch.tensor([1.0 if self._writer.locally_done() else 0.0])
            if dist.is_initialized():
                dist.all_reduce(done, op=dist.ReduceOp.MIN)
            if done.item() < 1.0:
                return
            self._writer.collect()
        iteration, folder, common, base, non_persistent = self._pending
        self._pending = None
        if self.state.rank == 0:
            publish(folder, self.run.checkpoint.ckpt_format, common)
        self._finish(iteration, base, non_persistent)

    def close(self) -> None:
        """Finish any pending save and stop the background worker (end of training)."""
        self.maybe_finalize(blocking=True)
        if self._writer is not None:
            self._writer.close()

    def _sharded_content(self, trainer: Any) -> tuple[list, list, dict[str, Any]]:
        """This rank's blocks and objects and the common state (collective)."""
        c = self.run.checkpoint
        spread = c.ckpt_fully_parallel_save
        blocks = model_blocks(trainer.model, self.state, spread)
        common = self.common(trainer)
        if not c.no_save_optim:
            optim_blocks, optim_common = optimizer_save_blocks(
                trainer.optimizer, trainer.model, self.state, spread
            )
            blocks += optim_blocks
            common["optimizer"] = optim_common
            common["opt_param_scheduler"] = trainer.scheduler.state_dict()
        objects = []
        if not c.no_save_rng:
            objects.append(
                rng_object(
                    get_rng_state(self.tracker), self.state, self.run.seed.data_parallel_random_init
                )
            )
        return blocks, objects, common

    def common(self, trainer: Any) -> dict[str, Any]:
        """The non-sharded part of a sharded checkpoint (`common.pt`)."""
        t = trainer.state
        return {
            "args": self._args(trainer),
            "checkpoint_version": CHECKPOINT_VERSION,
            "iteration": t.iteration,
            "num_floating_point_operations_so_far": t.floating_point_operations_so_far,
            "content_metadata": {"distrib_optim_sharding_type": "fully_reshardable"},
        }

    def _args(self, trainer: Any) -> Any:
        """The original's args Namespace with this run's sample counters."""
        t = trainer.state
        args = self.run.to_original_args()
        args.iteration = t.iteration
        args.consumed_train_samples = t.consumed_train_samples
        args.skipped_train_samples = t.skipped_train_samples
        args.consumed_valid_samples = t.consumed_valid_samples
        return args

    def content(self, trainer: Any) -> dict[str, Any]:
        """This shard's dict, with the original's keys."""
        c = self.run.checkpoint
        t = trainer.state
        content: dict[str, Any] = {
            "args": self._args(trainer),
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

    def resume(self, checkpoint: LegacyCheckpoint | ShardedCheckpoint, trainer: Any) -> None:
        """Restore the optimizer, scheduler, RNG and counters of a run (not `--finetune`)."""
        if isinstance(checkpoint, ShardedCheckpoint):
            self._resume_sharded(checkpoint, trainer)
            return
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
        self._restore_counters(checkpoint.args, checkpoint.iteration, raw, trainer)

    def _restore_counters(self, args: Any, iteration: int, raw: dict, trainer: Any) -> None:
        t = trainer.state
        t.iteration = iteration
        t.consumed_train_samples = int(getattr(args, "consumed_train_samples", 0) or 0)
        t.skipped_train_samples = int(getattr(args, "skipped_train_samples", 0) or 0)
        t.consumed_valid_samples = int(getattr(args, "consumed_valid_samples", 0) or 0)
        t.floating_point_operations_so_far = float(
            raw.get("num_floating_point_operations_so_far", 0.0)
        )

    def _resume_sharded(self, checkpoint: ShardedCheckpoint, trainer: Any) -> None:
        """The optimizer (resharded to this layout), scheduler, RNG and counters."""
        c = self.run.checkpoint
        common = checkpoint.common
        try:
            if not c.no_load_optim:
                for key in ("optimizer", "opt_param_scheduler"):
                    if key not in common:
                        raise ArgsError(
                            f"--load {c.load}: the checkpoint holds no {key} state; add "
                            "--no-load-optim (or --finetune) to start a fresh optimizer"
                        )
                optimizer_load(
                    trainer.optimizer,
                    trainer.model,
                    self.state,
                    common["optimizer"],
                    lambda blocks: load_sharded(checkpoint.path, blocks),
                )
                trainer.scheduler.load_state_dict(common["opt_param_scheduler"])
            if not c.no_load_rng:
                self._load_sharded_rng(checkpoint)
        except ShardedCheckpointError as err:
            raise ArgsError(f"--load {c.load}: {err}") from None
        self._restore_counters(checkpoint.args, checkpoint.iteration, common, trainer)

    def _load_sharded_rng(self, checkpoint: ShardedCheckpoint) -> None:
        """This (pp, tp[, dp]) shard's RNG state; ignored, as the original does, when the
        checkpoint was saved with other tensor/pipeline sizes (the shards do not map)."""
        args, s = checkpoint.args, self.state
        per_dp = self.run.seed.data_parallel_random_init
        saved = (
            getattr(args, "tensor_model_parallel_size", None),
            getattr(args, "pipeline_model_parallel_size", None),
        )
        if saved != (s.tp_size, s.pp_size) or (
            per_dp and getattr(args, "data_parallel_size", None) != s.dp_size
        ):
            self.log(
                f"(TP, PP) mismatch after resume ({(s.tp_size, s.pp_size)} vs {saved} from "
                "checkpoint): RNG state will be ignored"
            )
            return
        wanted = rng_object(None, s, per_dp)
        if wanted.unique_key not in checkpoint.object_keys:
            raise ArgsError(
                f"--load {self.run.checkpoint.load}: the checkpoint holds no rng_state "
                f"({wanted.unique_key}); add --no-load-rng"
            )
        states = load_sharded(checkpoint.path, [], [wanted])
        set_rng_state(states[wanted.key], self.tracker)


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
