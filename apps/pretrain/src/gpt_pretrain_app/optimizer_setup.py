"""The optimizer, its learning-rate/weight-decay scheduler and the micro-batch calculator, from
the resolved flags (field names are the flags' dests, so the mapping is a copy)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import torch
from gpt_parallel.microbatches import NumMicroBatchesCalculator, build_num_microbatches_calculator
from gpt_parallel.optim import OptimizerConfig, build_optimizer
from gpt_parallel.optim.optimizer import MegatronOptimizer
from gpt_parallel.schedules import OptimizerParamScheduler, SchedulerConfig, build_scheduler

from .data_setup import resolved_train_iters
from .errors import ArgsError


def _copy_fields(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values.update(overrides)
    return cls(**values)


def optimizer_config(args: argparse.Namespace) -> OptimizerConfig:
    return _copy_fields(OptimizerConfig, args)


def scheduler_config(args: argparse.Namespace) -> SchedulerConfig:
    return _copy_fields(SchedulerConfig, args, train_iters=resolved_train_iters(args))


def build_optimizer_and_scheduler(
    model: torch.nn.Module, args: argparse.Namespace, *, grad_stats_group: Any, tp_rank: int
) -> tuple[MegatronOptimizer, OptimizerParamScheduler]:
    try:
        optimizer = build_optimizer(
            model.named_parameters(),
            optimizer_config(args),
            grad_stats_group=grad_stats_group,
            tp_rank=tp_rank,
        )
        scheduler = build_scheduler(optimizer, scheduler_config(args), args.global_batch_size)
    except ValueError as err:
        raise ArgsError(str(err)) from None
    return optimizer, scheduler


def build_microbatch_calculator(args: argparse.Namespace) -> NumMicroBatchesCalculator:
    try:
        return build_num_microbatches_calculator(
            args.global_batch_size,
            args.micro_batch_size,
            args.data_parallel_size,
            args.rampup_batch_size,
            args.decrease_batch_size_if_needed,
        )
    except (ValueError, AssertionError) as err:
        raise ArgsError(f"--rampup-batch-size: {err}") from None
