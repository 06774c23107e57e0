"""From checked flags to a finished run: the table of contents of `pretrain`.

guard the flags -> validate and derive -> start the process group -> seed -> tokenizer and padded
vocabulary -> model -> `--load` -> optimizer and scheduler -> data -> train -> validate and test.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from gpt_data.index_cache import IndexCacheError
from gpt_parallel.ddp import DistributedDataParallel
from gpt_parallel.fsdp import DataParallel
from gpt_parallel.grad_accumulation import FP32GradAccumulator
from gpt_parallel.parallel_state import ParallelState
from gpt_parallel.random import RNGStatesTracker, set_random_seed
from gpt_tokenizers import TokenizerError

from .checkpoint_args import apply_checkpoint_args
from .checkpoint_load import check_load_flags, finetunes, load_pretrained_weights
from .checkpointing import Checkpointer, check_save_flags
from .cli import compile_choice
from .data_setup import DataIterators, build_datasets_and_iterators, resolved_train_iters
from .distributed import ProcessInfo, start_distributed, stop_distributed
from .errors import ArgsError
from .log_lines import datetime_marker
from .model_setup import (
    build_model,
    build_tokenizer_and_vocab,
    build_transformer_config,
    count_parameters,
)
from .moe_step import MoEStep, moe_groups
from .optimizer_setup import build_microbatch_calculator, build_optimizer_and_scheduler
from .parallel_setup import (
    GradFinalizer,
    expert_grad_stats_group,
    grad_stats_group,
    model_partitions,
    uses_fsdp,
    wrap_data_parallel,
    wrap_fully_sharded,
)
from .pipeline_setup import (
    ModelChunks,
    PipelineStep,
    build_model_chunks,
    pipeline_plan,
    tie_embeddings_across_stages,
)
from .progress_log import ProgressLog
from .result_checks import ResultChecks, UnexpectedResult
from .run_config import RunConfig
from .timers import Timers
from .training import Trainer
from .validate import validate_args
from .writers import MetricWriter, open_writers

Log = Callable[[str], None]

SHOW_TRACEBACKS = "GPT_STACK_TRACEBACK"
"""Set this environment variable to see the traceback behind a one-line error."""


def cuda_available() -> bool:
    return torch.cuda.is_available()


def arguments_block(args: argparse.Namespace) -> str:
    """The original's printout of the arguments: name padded with dots to 48 columns, sorted."""
    lines = ["------------------------ arguments ------------------------"]
    for name in sorted(vars(args), key=str.lower):
        dots = "." * (48 - len(name))
        lines.append(f"  {name} {dots} {getattr(args, name)}")
    lines.append("-------------------- end of arguments ---------------------")
    return "\n".join(lines)


def _printer(enabled: bool) -> Callable[[str], None]:
    def log(text: str) -> None:
        if enabled:
            print(text, flush=True)

    return log


def check_runnable_here(config: RunConfig) -> None:
    """What this version cannot run yet stops before any work, naming the cause."""
    if config.distributed.context_parallel_size > 1 and config.data.reset_attention_mask:
        raise ArgsError(
            "--context-parallel-size > 1 supports the causal mask only; drop "
            "--reset-attention-mask (its per-document masks do not split over CP ranks)"
        )


def run(args: argparse.Namespace, guard_flags, *, trainer_out: list | None = None) -> int:
    """Run `pretrain` with parsed flags; returns the exit code. `trainer_out`, when given,
    receives the Trainer (tests read its history)."""
    try:
        return _run(args, guard_flags, trainer_out)
    except (
        TokenizerError,
        UnexpectedResult,
        IndexCacheError,
        ValueError,
        OSError,
        StopIteration,
    ) as err:
        if os.environ.get(SHOW_TRACEBACKS):
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArgsError(text) from None


def _run(args: argparse.Namespace, guard_flags, trainer_out: list | None) -> int:
    setup = set_up(args, guard_flags)
    if trainer_out is not None:
        trainer_out.append(setup.trainer)
    return execute(setup)


@dataclass(frozen=True)
class Setup:
    """Everything a run is made of, built once by ``set_up`` and used by ``execute``."""

    config: RunConfig
    process: ProcessInfo
    state: ParallelState
    tokenizer: Any
    model: torch.nn.Module
    data: DataIterators
    trainer: Trainer
    writer: MetricWriter
    log: Log


@dataclass(frozen=True)
class _Printers:
    log: Log
    log_last: Log
    warn: Log


def _printers(process: ProcessInfo) -> _Printers:
    def warn(text: str) -> None:
        if process.is_first:
            print(text, file=sys.stderr, flush=True)

    return _Printers(_printer(process.is_first), _printer(process.is_last), warn)


def set_up(args: argparse.Namespace, guard_flags) -> Setup:
    """Flags -> RunConfig -> process group, seeds, tokenizer, model, optimizer, data, trainer."""
    start = time.time()
    warn_lines: list[str] = []
    guard_flags(args, cuda_available(), warn=warn_lines.append)
    checkpoint_arg_lines: list[str] = []
    args = apply_checkpoint_args(args, checkpoint_arg_lines.append)
    world_size = (
        dist.get_world_size() if dist.is_initialized() else int(os.getenv("WORLD_SIZE", "1"))
    )
    compile_mode = compile_choice()
    config = validate_args(args, world_size=world_size)
    check_runnable_here(config)
    check_load_flags(config)
    check_save_flags(config)

    if config.logging.logging_level is not None:
        logging.basicConfig(level=config.logging.logging_level)
    process = start_distributed(config.distributed)
    out = _printers(process)
    for text in [*warn_lines, *config.warnings]:
        out.warn(text)
    for text in [*checkpoint_arg_lines, *config.messages]:
        out.log(text)

    state = ParallelState.build(
        config.distributed,
        config.expert,
        timeout=timedelta(minutes=config.distributed.distributed_timeout_minutes),
    )
    tokenizer, padded = build_tokenizer_and_vocab(config, out.log)
    config = config.with_padded_vocab(padded)
    out.log(arguments_block(config.to_original_args()))
    tracker = _seed(config, state, process, out.log)
    out.log(datetime_marker("after megatron is initialized"))
    out.log(f"time to initialize megatron (seconds): {time.time() - start:.3f}")

    out.log("building GPT model ...")
    config = config.with_model(build_transformer_config(config, out.warn))
    tensor, context = model_partitions(config, state)
    pipeline = None
    if state.pp_size > 1:
        plan = pipeline_plan(config)
        model = build_model_chunks(
            config,
            plan,
            state.pp_rank,
            process.device,
            compile=compile_mode,
            partition=tensor,
            context=context,
            rng_fork=tracker.fork,
            moe_groups=moe_groups(state),
        )
        tie_embeddings_across_stages(model, state)
        pipeline = PipelineStep.build(config, state)
    else:
        model = build_model(
            config.model,
            process.device,
            compile=compile_mode,
            partition=tensor,
            context=context,
            rng_fork=tracker.fork,
            moe_groups=moe_groups(state),
        )
    out.log(
        " > number of parameters on (tensor, pipeline) model parallel rank "
        f"({state.tp_rank}, {state.pp_rank}): {count_parameters(model)}"
    )
    checkpoint = None
    if config.checkpoint.load or config.checkpoint.pretrained_checkpoint:
        checkpoint = load_pretrained_weights(
            _single_chunk(model),
            config,
            tp_rank=state.tp_rank,
            pp_rank=state.pp_rank,
            ep_rank=state.ep_rank,
            log=out.log,
            warn=out.warn,
        )
    resuming = checkpoint is not None and not finetunes(config)
    trainer_parts = _optimization(config, model, state)
    out.log(datetime_marker("after model, optimizer, and learning rate scheduler are built"))

    data = build_datasets_and_iterators(
        config,
        tokenizer,
        dp_rank=state.dp_rank,
        dp_size=state.dp_size,
        # Every rank reads its own micro-batches (tensor- and context-parallel peers read the
        # same ones); global rank 0 writes the index caches first, the others then read them.
        is_build_rank=state.is_pipeline_first_stage or state.is_pipeline_last_stage,
        barrier=dist.barrier if process.world_size > 1 else None,
        consumed_train_samples=_saved_count(checkpoint, "consumed_train_samples", resuming),
        consumed_valid_samples=_saved_count(checkpoint, "consumed_valid_samples", resuming),
        log=out.log,
    )
    data = _agree_on_data_flags(data)
    out.log(datetime_marker("after dataloaders are built"))
    out.log("done with setup ...")
    writer = open_writers(config, process.is_last)
    trainer = _trainer(config, model, trainer_parts, process, state, writer, out.log_last, pipeline)
    trainer.moe = MoEStep.build(model, config.model, state, config.loop.calculate_per_token_loss)
    trainer.checkpointer = Checkpointer(config, state, tracker, out.log)
    if resuming:
        trainer.checkpointer.resume(checkpoint, trainer)
    if config.logging.log_progress and config.checkpoint.save:
        trainer.progress = ProgressLog(
            config.checkpoint.save,
            world_size=process.world_size,
            writes=state.rank == 0,
            flops_at_start=trainer.state.floating_point_operations_so_far,
        )
    return Setup(config, process, state, tokenizer, model, data, trainer, writer, out.log)


def _saved_count(checkpoint: Any, name: str, resuming: bool) -> int:
    """A sample counter of the checkpoint being resumed (0 when starting afresh)."""
    if not resuming:
        return 0
    return int(getattr(checkpoint.args, name, 0) or 0)


def _seed(
    config: RunConfig, state: ParallelState, process: ProcessInfo, log: Log
) -> RNGStatesTracker:
    if config.loop.deterministic_mode:
        torch.use_deterministic_algorithms(True)
    log(f"> setting random seeds to {config.seed.seed} ...")
    tracker = set_random_seed(
        config.seed.seed,
        tp_rank=state.tp_rank,
        pp_rank=state.pp_rank,
        dp_rank=state.dp_rank,
        data_parallel_random_init=config.seed.data_parallel_random_init,
        device_type=process.device.type,
    )
    return tracker  # checkpoints save and restore its streams


@dataclass(frozen=True)
class _Optimization:
    optimizer: Any
    scheduler: Any
    microbatches: Any
    accumulator: FP32GradAccumulator | None
    ddp: DistributedDataParallel | DataParallel | None
    finalizer: GradFinalizer


def _optimization(config: RunConfig, model: torch.nn.Module, state: ParallelState) -> _Optimization:
    sharded = None
    if uses_fsdp(config):
        ddp = sharded = wrap_fully_sharded(model, config, state)
    else:
        ddp = wrap_data_parallel(model, config, state)
    optimizer, scheduler = build_optimizer_and_scheduler(
        model,
        config,
        grad_stats_group=grad_stats_group(config, state),
        expert_grad_stats_group=expert_grad_stats_group(config, state),
        tp_rank=state.tp_rank,
        ddp=ddp,
        optimizer=None if sharded is None else sharded.optimizer,
    )
    microbatches = build_microbatch_calculator(config)
    precision = config.precision
    accumulator = None
    if (
        ddp is None
        and (precision.fp16 or precision.bf16)
        and precision.accumulate_allreduce_grads_in_fp32
    ):
        accumulator = FP32GradAccumulator(model.parameters())
    finalizer = GradFinalizer.build(model, ddp, state)
    return _Optimization(optimizer, scheduler, microbatches, accumulator, ddp, finalizer)


def _trainer(
    config: RunConfig,
    model: torch.nn.Module,
    parts: _Optimization,
    process: ProcessInfo,
    state: ParallelState,
    writer: MetricWriter,
    log_last: Log,
    pipeline: PipelineStep | None,
) -> Trainer:
    loop = config.loop
    checks = ResultChecks(
        check_nan=loop.check_for_nan_in_loss_and_grad,
        check_spiky_loss=loop.check_for_spiky_loss,
        check_large_grads=loop.check_for_large_grads,
        rank=process.rank,
        device=str(process.device),
    )
    return Trainer(
        config=config,
        model=model,
        optimizer=parts.optimizer,
        scheduler=parts.scheduler,
        microbatches=parts.microbatches,
        device=process.device,
        train_iters=resolved_train_iters(config) or 0,
        writer=writer,
        timers=Timers(config.logging.timing_log_level, config.logging.timing_log_option),
        log=log_last,
        checks=checks,
        dp_cp_group=state.group("dp-cp"),
        grad_accumulator=parts.accumulator,
        world_size=process.world_size,
        rank=process.rank,
        ddp=parts.ddp,
        finalizer=parts.finalizer,
        context_parallel=(state.cp_rank, state.cp_size),
        dp_group=state.group("dp"),
        pipeline=pipeline,
    )


def _single_chunk(model: torch.nn.Module) -> torch.nn.Module:
    """The module `--load` fills: the model, or a pipeline rank's only chunk."""
    if not isinstance(model, ModelChunks):
        return model
    if len(model) > 1:
        raise ArgsError(
            "--load with virtual pipeline stages (several model chunks per rank) is not "
            "implemented yet"
        )
    return model[0]


def _agree_on_data_flags(data: DataIterators) -> DataIterators:
    """Whether to train, validate and test, as the ranks that read data decided (middle
    pipeline stages read none but must run the same schedule)."""
    if not dist.is_initialized():
        return data
    flags = torch.tensor([data.do_train, data.do_valid, data.do_test], dtype=torch.int)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return dataclasses.replace(
        data, do_train=bool(flags[0]), do_valid=bool(flags[1]), do_test=bool(flags[2])
    )


def execute(setup: Setup) -> int:
    """Train, then validate and test, as the original's pretrain does after setup."""
    log, data, trainer = setup.log, setup.data, setup.trainer
    skip_train = setup.config.evaluation.skip_train
    try:
        if not skip_train and data.do_train:
            log("training ...")
            if trainer.progress is not None:
                trainer.progress.start_job()
            log(datetime_marker("before the start of training step"))
            trainer.train(data.train, data.valid if data.do_valid else [])
            log(datetime_marker("after training is done"))
        else:
            log("skipping training (--skip-train) ...")
        iteration = trainer.state.iteration
        if trainer.exit_requested:
            return 0  # the original exits here, without the final validation and test
        if data.do_valid:
            trainer.evaluate_and_print(
                f"iteration {iteration} on validation set", data.valid, write=not skip_train
            )
        if data.do_test:
            trainer.evaluate_and_print(
                f"iteration {iteration} on test set", [data.test], write=not skip_train
            )
    finally:
        setup.writer.close()
        stop_distributed(setup.process)
    return 0
