"""The optimizer, its learning-rate/weight-decay scheduler and the micro-batch calculator, from
the run's typed configs (gpt-parallel's own flag classes, plus the resolved train length)."""

from __future__ import annotations

from typing import Any

import torch
from gpt_parallel.ddp import CpuOffloadConfig, DistributedOptimizer
from gpt_parallel.microbatches import NumMicroBatchesCalculator, build_num_microbatches_calculator
from gpt_parallel.optim import build_distributed_optimizer, build_optimizer
from gpt_parallel.optim.optimizer import MegatronOptimizer
from gpt_parallel.schedules import OptimizerParamScheduler, build_scheduler

from .data_setup import resolved_train_iters
from .errors import ArgsError
from .run_config import RunConfig, expect_typed


def build_optimizer_and_scheduler(
    model: torch.nn.Module,
    run: RunConfig,
    *,
    grad_stats_group: Any,
    tp_rank: int,
    ddp: Any = None,
    optimizer: Any = None,
    expert_grad_stats_group: Any = None,
) -> tuple[MegatronOptimizer | DistributedOptimizer, OptimizerParamScheduler]:
    """The optimizer (sharded over the data-parallel ranks with --use-distributed-optimizer,
    which needs the DDP wrapper `ddp`; or `optimizer`, the one FSDP built) and its scheduler."""
    expect_typed(run, RunConfig, "build_optimizer_and_scheduler")
    common = dict(
        kind=run.parallel.optimizer,
        log_num_zeros_in_grad=run.logging.log_num_zeros_in_grad,
        grad_stats_group=grad_stats_group,
        tp_rank=tp_rank,
    )
    try:
        if optimizer is None and run.distributed.use_distributed_optimizer:
            assert ddp is not None, "the distributed optimizer needs the DDP wrapper"
            optimizer = build_distributed_optimizer(
                ddp,
                run.optimizer,
                run.learning_rate,
                run.precision,
                cpu_offload=CpuOffloadConfig.from_flags(run.parallel),
                **common,
            )
        elif optimizer is None:
            optimizer = build_optimizer(
                model.named_parameters(),
                run.optimizer,
                run.learning_rate,
                run.precision,
                expert_grad_stats_group=expert_grad_stats_group,
                **common,
            )
        scheduler = build_scheduler(
            optimizer,
            run.learning_rate,
            run.optimizer,
            global_batch_size=run.parallel.global_batch_size,
            train_iters=resolved_train_iters(run),
            train_samples=run.loop.train_samples,
        )
    except ValueError as err:
        raise ArgsError(str(err)) from None
    return optimizer, scheduler


def build_microbatch_calculator(run: RunConfig) -> NumMicroBatchesCalculator:
    expect_typed(run, RunConfig, "build_microbatch_calculator")
    parallel = run.parallel
    try:
        return build_num_microbatches_calculator(
            parallel.global_batch_size,
            parallel.micro_batch_size,
            run.distributed.data_parallel_size,
            parallel.rampup_batch_size,
            parallel.decrease_batch_size_if_needed,
        )
    except (ValueError, AssertionError) as err:
        raise ArgsError(f"--rampup-batch-size: {err}") from None
