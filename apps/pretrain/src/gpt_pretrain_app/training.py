"""The training loop, evaluation and their logging (the original's training.train,
training_log, evaluate and evaluate_and_print_results), on one model chunk.

It counts iterations and samples, steps through the batch-size rampup, prints the training line
every `--log-interval`, writes TensorBoard/wandb scalars under the original's tags, evaluates
every `--eval-interval`, and stops at `--train-iters`, `--exit-interval` or
`--exit-duration-in-mins`.
"""

from __future__ import annotations

import gc
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from gpt_models.flops import transformer_flops
from gpt_parallel.collectives import all_reduce_
from gpt_parallel.ddp import check_param_hashes_across_dp_replicas
from gpt_parallel.losses import reduce_loss_reports

from .log_lines import (
    IntervalStats,
    datetime_marker,
    memory_line,
    training_line,
    validation_lines,
)
from .result_checks import ResultChecks, UnexpectedResult
from .run_config import RunConfig, expect_typed
from .signals import SigtermFlag
from .timers import Timers
from .train_step import StepSettings, forward_backward, train_step
from .writers import MetricWriter

Log = Callable[[str], None]

TIMERS_TO_LOG = [
    "forward-backward",
    "forward-compute",
    "backward-compute",
    "batch-generator",
    "all-grads-sync",
    "optimizer",
]


@dataclass
class TrainState:
    """The counters a checkpoint carries and the loop advances."""

    iteration: int = 0
    consumed_train_samples: int = 0
    skipped_train_samples: int = 0
    consumed_valid_samples: int = 0
    floating_point_operations_so_far: float = 0.0


@dataclass
class TrainHistory:
    """Per-iteration values, kept for callers (tests, benchmarks) that want them."""

    lm_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)
    validation: list[tuple[str, dict[str, float]]] = field(default_factory=list)


@dataclass
class Trainer:
    config: RunConfig
    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    microbatches: Any
    device: torch.device
    train_iters: int
    writer: MetricWriter
    timers: Timers
    log: Log
    checks: ResultChecks
    dp_cp_group: Any = None
    grad_accumulator: Any = None
    world_size: int = 1
    rank: int = 0
    ddp: Any = None
    """The DistributedDataParallel wrapper (multi-process runs), else None."""
    finalizer: Any = None
    """The GradFinalizer of the step (DP reduction, tensor-parallel gradient sums)."""
    context_parallel: tuple[int, int] = (0, 1)
    """(rank, size) of this process in the context-parallel group."""
    dp_group: Any = None
    """The data-parallel group, for --check-weight-hash-across-dp-replicas-interval."""
    pipeline: Any = None
    """The PipelineStep when the model is split into pipeline stages (`model` is then this
    rank's chunks), else None."""
    checkpointer: Any = None
    """The Checkpointer that writes `--save` checkpoints (and resumed this run), or None."""
    last_saved_iteration: int | None = None
    progress: Any = None
    """The ProgressLog of --log-progress, or None."""
    moe: Any = None
    """The MoEStep of a model with experts (moe_step), or None."""
    exit_requested: bool = False
    """Set when the loop stopped early (--exit-interval, --exit-duration-in-mins, SIGTERM with
    --exit-signal-handler): the run then ends without the final validation and test."""
    state: TrainState = field(default_factory=TrainState)
    history: TrainHistory = field(default_factory=TrainHistory)

    def __post_init__(self) -> None:
        expect_typed(self.config, RunConfig, "Trainer(config=...)")

    # ------------------------------------------------------------------ settings
    @property
    def settings(self) -> StepSettings:
        c = self.config
        return StepSettings(
            micro_batch_size=c.parallel.micro_batch_size,
            data_parallel_size=c.distributed.data_parallel_size,
            calculate_per_token_loss=c.loop.calculate_per_token_loss,
            empty_unused_memory_level=c.loop.empty_unused_memory_level,
            use_causal_shortcut=not c.data.reset_attention_mask,
            vocab_size=c.tokenizer.padded_vocab_size,
            grad_accumulator=self.grad_accumulator,
            context_parallel=self.context_parallel,
            ddp=self.ddp,
            finalizer=self.finalizer,
            pipeline=self.pipeline,
            moe=self.moe,
        )

    def iteration_flops(self, batch_size: int) -> float:
        return transformer_flops(
            self.model.config, batch_size=batch_size, seq_length=self.config.data.seq_length
        )

    # ------------------------------------------------------------------ training
    def train(self, train_iterator: Any, valid_iterators: list[Any]) -> int:
        """Run until --train-iters (or an exit condition); returns the process exit code."""
        c = self.config
        state = self.state
        stats = IntervalStats()
        report_memory = True
        gc_was_enabled = gc.isenabled()
        if c.loop.manual_gc:
            gc.disable()
            gc.collect()
        start_time = time.time()
        flops_since_log = 0.0
        self.timers("interval-time", log_level=0).start()
        exit_code = 0
        sigterm = SigtermFlag() if c.loop.exit_signal_handler else None
        if sigterm is not None:
            sigterm.__enter__()
        try:
            while state.iteration < self.train_iters:
                if self.checkpointer is not None:
                    self.checkpointer.maybe_finalize()  # a finished --async-save
                self.microbatches.update(state.consumed_train_samples, True)
                num_microbatches = self.microbatches.get()
                self.checks.iteration = state.iteration
                result = train_step(
                    self.model,
                    train_iterator,
                    self.optimizer,
                    self.scheduler,
                    num_microbatches,
                    self.settings,
                    self.device,
                    dp_cp_group=self.dp_cp_group,
                    checks=self.checks,
                    timers=self.timers,
                )
                state.iteration += 1
                batch_size = (
                    num_microbatches
                    * c.parallel.micro_batch_size
                    * c.distributed.data_parallel_size
                )
                state.consumed_train_samples += batch_size
                skipped_in_batch = (
                    self.microbatches.get_current_global_batch_size()
                    - self.microbatches.get_current_running_global_batch_size()
                )
                if c.parallel.decrease_batch_size_if_needed:
                    state.skipped_train_samples += skipped_in_batch
                flops = self.iteration_flops(batch_size)
                state.floating_point_operations_so_far += flops
                flops_since_log += flops
                self._record(result)
                stats.add(result.losses, result.skipped)
                report_memory = self._training_log(
                    result, stats, batch_size, flops_since_log, report_memory
                )
                if state.iteration % c.loop.log_interval == 0:
                    flops_since_log = 0.0

                if (
                    c.evaluation.eval_interval
                    and state.iteration % c.evaluation.eval_interval == 0
                    and valid_iterators
                ):
                    self.timers("interval-time").stop()
                    self.evaluate_and_print(
                        f"iteration {state.iteration}", valid_iterators, write=True
                    )
                    self.timers("interval-time").start()

                self._check_weight_hashes()
                if sigterm is not None and sigterm.received_anywhere(self.device):
                    self.save_checkpoint()
                    self.log(datetime_marker("exiting program after receiving SIGTERM."))
                    self.exit_requested = True
                    break
                if c.checkpoint.save_interval and state.iteration % c.checkpoint.save_interval == 0:
                    self.save_checkpoint()
                elif self.checkpointer is not None and self.checkpointer.non_persistent_due(
                    state.iteration
                ):
                    self.save_checkpoint(non_persistent=True)
                if self._should_exit(start_time):
                    self.save_checkpoint()
                    self.exit_requested = True
                    break
                if (
                    c.loop.manual_gc
                    and c.loop.manual_gc_interval
                    and (state.iteration % c.loop.manual_gc_interval == 0)
                ):
                    gc.collect()
        finally:
            if sigterm is not None:
                sigterm.__exit__(None, None, None)
            self.timers("interval-time").stop()
            if c.loop.manual_gc and gc_was_enabled:
                gc.enable()
        if state.iteration != 0:
            self.save_checkpoint()  # the last iteration, unless just saved
        if self.checkpointer is not None:
            self.checkpointer.close()  # waits for a pending --async-save
        self.writer.flush()
        return exit_code

    def save_checkpoint(self, non_persistent: bool = False) -> None:
        """`--save`: write this iteration's checkpoint, once (`non_persistent`: the
        `--non-persistent-save-interval` one, which a persistent save may follow)."""
        if self.checkpointer is None:
            return
        if not (self.config.checkpoint.save or non_persistent):
            return
        if self.last_saved_iteration == self.state.iteration:
            return
        overlap = getattr(getattr(self.ddp, "config", None), "overlap_param_gather", False)
        if overlap:
            self.ddp.disable_forward_pre_hook()  # every parameter gathered before it is saved
        self.timers("save-checkpoint", log_level=0).start()
        self.checkpointer.save(self, non_persistent=non_persistent)
        self.timers("save-checkpoint").stop()
        if not non_persistent:
            self.last_saved_iteration = self.state.iteration
        if self.progress is not None and not non_persistent:
            self.progress.saved(
                self.state.iteration,
                self.state.floating_point_operations_so_far,
                self.state.consumed_train_samples * self.config.data.seq_length,
            )
        if overlap:
            self.ddp.enable_forward_pre_hook()

    def _check_weight_hashes(self) -> None:
        """--check-weight-hash-across-dp-replicas-interval: every data-parallel replica must
        hold the same weights; a mismatch stops the run naming the iteration."""
        interval = self.config.parallel.check_weight_hash_across_dp_replicas_interval
        if not interval or self.state.iteration % interval:
            return
        overlap = getattr(getattr(self.ddp, "config", None), "overlap_param_gather", False)
        if overlap:
            self.ddp.disable_forward_pre_hook()  # finish every gather before hashing
        if not check_param_hashes_across_dp_replicas([self.model], self.dp_group, cross_check=True):
            raise UnexpectedResult(
                f"parameter hashes differ across data-parallel replicas at iteration "
                f"{self.state.iteration} (--check-weight-hash-across-dp-replicas-interval)"
            )
        if dist.is_initialized():
            dist.barrier()
        self.log(f">>> Weight hashes match after {self.state.iteration} iterations...")
        if overlap:
            self.ddp.enable_forward_pre_hook()

    def _should_exit(self, start_time: float) -> bool:
        """--exit-duration-in-mins (the slowest rank's clock) or --exit-interval reached."""
        loop, iteration = self.config.loop, self.state.iteration
        if loop.exit_duration_in_mins:
            minutes = torch.tensor([(time.time() - start_time) / 60.0], device=self.device)
            all_reduce_(minutes, dist.group.WORLD if dist.is_initialized() else None, "max")
            if minutes.item() > loop.exit_duration_in_mins:
                self.log(f"exiting program after {minutes.item()} minutes")
                return True
        if loop.exit_interval and iteration % loop.exit_interval == 0:
            self.log(f"exiting program at iteration {iteration}")
            return True
        return False

    def _record(self, result: Any) -> None:
        self.history.lm_loss.append(result.losses.get("lm loss", math.nan))
        self.history.learning_rate.append(self.learning_rates()[0])
        self.history.grad_norm.append(result.grad_norm)
        self.history.skipped.append(result.skipped)

    def learning_rates(self) -> tuple[float | None, float | None]:
        """(learning rate, decoupled learning rate) of the optimizer's groups after the step."""
        lr = decoupled = None
        for group in self.optimizer.param_groups:
            if group.get("is_decoupled_lr", False):
                decoupled = group["lr"]
            else:
                lr = group["lr"]
        return lr, decoupled

    # ------------------------------------------------------------------ logging
    def _training_log(
        self, result: Any, stats: IntervalStats, batch_size: int, flops: float, report_memory: bool
    ) -> bool:
        c = self.config
        state = self.state
        iteration = state.iteration
        samples = state.consumed_train_samples
        lr, decoupled_lr = self.learning_rates()
        loss_scale = float(self.optimizer.get_loss_scale().item())
        params_norm = self.optimizer.params_norm() if c.logging.log_params_norm else None
        w = self.writer
        if w.active and iteration % c.logging.tensorboard_log_interval == 0:
            w.scalar("samples vs steps", samples, iteration)
            w.scalar("learning-rate", lr, iteration, samples)
            if decoupled_lr is not None:
                w.scalar("decoupled-learning-rate", decoupled_lr, iteration)
            if state.skipped_train_samples > 0:
                w.scalar("skipped-train-samples", state.skipped_train_samples, iteration, samples)
            w.scalar("batch-size", batch_size, iteration, samples)
            for key, value in result.losses.items():
                w.scalar(key, value, iteration, samples)
            if c.logging.log_loss_scale_to_tensorboard:
                w.scalar("loss-scale", loss_scale, iteration, samples)
            if c.logging.log_world_size_to_tensorboard:
                w.scalar("world-size", self.world_size, iteration, samples)
            if result.grad_norm is not None:
                w.scalar("grad-norm", result.grad_norm, iteration, samples)
            if result.num_zeros is not None:
                w.scalar("num-zeros", result.num_zeros, iteration, samples)
            if params_norm is not None:
                w.scalar("params-norm", params_norm, iteration, samples)
            if c.logging.log_memory_to_tensorboard:
                for name, value in memory_stats_bytes(self.device).items():
                    w.scalar(name, value, iteration)

        if iteration % c.loop.log_interval != 0:
            return report_memory
        iterations = stats.advanced_iterations + stats.skipped_iterations
        elapsed_s = self.timers("interval-time").take(reset=True)
        per_iteration_s = elapsed_s / max(iterations, 1)
        throughput = None
        if c.logging.log_throughput:
            throughput = flops / (elapsed_s * 1e12 * self.world_size) if elapsed_s else 0.0
        if w.active:
            if c.logging.log_timers_to_tensorboard:
                w.scalar("iteration-time", per_iteration_s, iteration)
            if c.logging.log_throughput:
                w.scalar("throughput", throughput, iteration)
        self.log(
            training_line(
                iteration=iteration,
                train_iters=self.train_iters,
                consumed_samples=samples,
                skipped_samples=state.skipped_train_samples,
                elapsed_ms=per_iteration_s * 1000.0,
                learning_rate=lr,
                decoupled_learning_rate=decoupled_lr,
                global_batch_size=batch_size,
                stats=stats,
                loss_scale=loss_scale,
                grad_norm=result.grad_norm,
                num_zeros=result.num_zeros,
                params_norm=params_norm,
                throughput_tflops=throughput,
            )
        )
        stats.reset()
        if report_memory:
            line = memory_report(self.rank, iteration, self.device)
            if line:
                self.log(line)
            report_memory = False
        report = self.timers.report(TIMERS_TO_LOG, normalizer=c.loop.log_interval)
        if report:
            self.log(report)
        return report_memory

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, iterator: Any, eval_iters: int) -> dict[str, float]:
        """Token-weighted mean losses over `eval_iters` global batches (no gradients)."""
        c = self.config
        self.model.eval()
        num_microbatches = max(
            1,
            c.parallel.global_batch_size
            // (c.parallel.micro_batch_size * c.distributed.data_parallel_size),
        )
        totals: dict[str, torch.Tensor] = {}
        try:
            for _ in range(eval_iters):
                reports, _tokens = forward_backward(
                    self.model,
                    iterator,
                    num_microbatches,
                    self.settings,
                    self.device,
                    forward_only=True,
                )
                for key in reports[0] if reports else ():  # reports: last stage only
                    summed = torch.stack([r[key] for r in reports]).sum(dim=0)
                    all_reduce_(summed, self.dp_cp_group, "sum")
                    totals[key] = totals.get(key, torch.zeros(2)) + summed.cpu()
                self.state.consumed_valid_samples += c.parallel.global_batch_size
        finally:
            self.model.train()
        return {k: float(v[0] / v[1]) for k, v in totals.items()}

    def evaluate_and_print(
        self, prefix: str, iterators: list[Any], *, write: bool, eval_iters: int | None = None
    ) -> list[dict[str, float]]:
        """Evaluate each validation (or the test) set and print the original's dashed box."""
        c = self.config
        results = []
        collect = c.loop.manual_gc and c.loop.manual_gc_eval
        if collect:
            gc.collect()
        self.timers("evaluate", log_level=0).start()
        for index, iterator in enumerate(iterators):
            if iterator is None and self.pipeline is None:
                continue  # middle pipeline stages read no data but run the schedule
            losses = self.evaluate(
                iterator, c.evaluation.eval_iters if eval_iters is None else eval_iters
            )
            label = prefix if len(iterators) == 1 else f"{prefix} (validation set {index})"
            for line in validation_lines(label, losses):
                self.log(line)
            suffix = "" if len(iterators) == 1 else f"-{index}"
            if write and self.writer.active:
                samples = self.state.consumed_train_samples
                for key, value in losses.items():
                    self.writer.scalar(
                        f"{key} validation{suffix}", value, self.state.iteration, samples
                    )
                    if c.logging.log_validation_ppl_to_tensorboard:
                        self.writer.scalar(
                            f"{key} validation{suffix} ppl",
                            math.exp(min(20.0, value)),
                            self.state.iteration,
                            samples,
                        )
            self.history.validation.append((label, losses))
            results.append(losses)
        self.timers("evaluate").stop()
        if collect:
            gc.collect()
        return results


def memory_stats_bytes(device: torch.device) -> dict[str, float]:
    """The original's memory scalars on CUDA; the process's resident memory on a CPU."""
    if device.type == "cuda":
        stats = torch.cuda.memory_stats(device)
        return {
            "mem-reserved-bytes": stats.get("reserved_bytes.all.current", 0),
            "mem-allocated-bytes": stats.get("allocated_bytes.all.current", 0),
            "mem-max-allocated-bytes": stats.get("allocated_bytes.all.peak", 0),
            "mem-allocated-count": stats.get("allocation.all.current", 0),
        }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "mem-allocated-bytes": current_rss_bytes(),
        "mem-max-allocated-bytes": peak,
    }


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_report(rank: int, iteration: int, device: torch.device) -> str | None:
    """The original's memory line on CUDA; on a CPU the resident set instead."""
    mb = 1024.0 * 1024.0
    if device.type == "cuda":
        return memory_line(
            rank,
            iteration,
            {
                "allocated": torch.cuda.memory_allocated(device) / mb,
                "max_allocated": torch.cuda.max_memory_allocated(device) / mb,
                "reserved": torch.cuda.memory_reserved(device) / mb,
                "max_reserved": torch.cuda.max_memory_reserved(device) / mb,
            },
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return (
        f"[Rank {rank}] (after {iteration} iterations) memory (MB) | resident: "
        f"{current_rss_bytes() / mb:.1f} | max resident: {peak:.1f}"
    )


__all__ = ["TrainState", "Trainer", "reduce_loss_reports"]
