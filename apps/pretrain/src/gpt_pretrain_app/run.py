"""From checked flags to a finished run: the table of contents of `pretrain`.

guard the flags -> validate and derive -> start the process group -> seed -> tokenizer and padded
vocabulary -> model -> `--load` -> optimizer and scheduler -> data -> train -> validate and test.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable

import torch
from gpt_data.index_cache import IndexCacheError
from gpt_parallel.grad_accumulation import FP32GradAccumulator
from gpt_parallel.parallel_state import ParallelSizes, ParallelState
from gpt_parallel.random import set_random_seed
from gpt_tokenizers import TokenizerError

from .checkpoint_load import check_load_flags, load_pretrained_weights
from .data_setup import build_datasets_and_iterators, resolved_train_iters
from .distributed import start_distributed, stop_distributed
from .errors import ArgsError
from .log_lines import datetime_marker
from .model_setup import (
    build_model,
    build_tokenizer_and_vocab,
    build_transformer_config,
    count_parameters,
)
from .optimizer_setup import build_microbatch_calculator, build_optimizer_and_scheduler
from .result_checks import ResultChecks, UnexpectedResult
from .timers import Timers
from .training import Trainer
from .validate import validate_args
from .writers import open_writers

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


def check_runnable_here(args: argparse.Namespace, world_size: int) -> None:
    """What this version cannot run yet stops before any work, naming the cause."""
    if world_size > 1:
        raise ArgsError(
            f"WORLD_SIZE={world_size}: multi-process training (data, tensor, pipeline and "
            "context parallelism) is not implemented yet; run one process"
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
    start = time.time()
    warn_lines: list[str] = []
    guard_flags(args, cuda_available(), warn=warn_lines.append)
    world_size = int(os.getenv("WORLD_SIZE", "1"))
    resolution = validate_args(args, world_size=world_size)
    a = resolution.args
    check_runnable_here(a, world_size)
    check_load_flags(a)

    if a.logging_level is not None:
        logging.basicConfig(level=a.logging_level)
    process = start_distributed(a)
    log = _printer(process.is_first)
    log_last = _printer(process.is_last)

    def warn(text: str) -> None:
        if process.is_first:
            print(text, file=sys.stderr, flush=True)

    for text in warn_lines + resolution.warnings:
        warn(text)
    for text in resolution.messages:
        log(text)

    state = ParallelState.build(
        ParallelSizes(
            tensor_model_parallel_size=a.tensor_model_parallel_size,
            pipeline_model_parallel_size=a.pipeline_model_parallel_size,
            context_parallel_size=a.context_parallel_size,
        )
    )
    tokenizer, _padded = build_tokenizer_and_vocab(a, log)
    log(arguments_block(a))
    if a.deterministic_mode:
        torch.use_deterministic_algorithms(True)
    log(f"> setting random seeds to {a.seed} ...")
    tracker = set_random_seed(
        a.seed,
        tp_rank=state.tp_rank,
        pp_rank=state.pp_rank,
        dp_rank=state.dp_rank,
        data_parallel_random_init=a.data_parallel_random_init,
        device_type=process.device.type,
    )
    del tracker  # dropout draws from the default generator on one tensor-parallel rank
    log(datetime_marker("after megatron is initialized"))
    log(f"time to initialize megatron (seconds): {time.time() - start:.3f}")

    log("building GPT model ...")
    config = build_transformer_config(a, warn)
    model = build_model(config, process.device)
    log(
        " > number of parameters on (tensor, pipeline) model parallel rank "
        f"({state.tp_rank}, {state.pp_rank}): {count_parameters(model)}"
    )
    if a.load:
        load_pretrained_weights(
            model, a, tp_rank=state.tp_rank, pp_rank=state.pp_rank, log=log, warn=warn
        )
    optimizer, scheduler = build_optimizer_and_scheduler(
        model, a, grad_stats_group=state.group("tp-pp"), tp_rank=state.tp_rank
    )
    microbatches = build_microbatch_calculator(a)
    low_precision = a.fp16 or a.bf16
    accumulator = None
    if low_precision and a.accumulate_allreduce_grads_in_fp32:
        accumulator = FP32GradAccumulator(model.parameters())
    log(datetime_marker("after model, optimizer, and learning rate scheduler are built"))

    data = build_datasets_and_iterators(
        a,
        tokenizer,
        dp_rank=state.dp_rank,
        dp_size=state.dp_size,
        is_build_rank=state.tp_rank == 0
        and (state.is_pipeline_first_stage or state.is_pipeline_last_stage),
        barrier=None,
        log=log,
    )
    log(datetime_marker("after dataloaders are built"))
    log("done with setup ...")

    writer = open_writers(a, process.is_last)
    timers = Timers(a.timing_log_level, a.timing_log_option)
    checks = ResultChecks(
        check_nan=a.check_for_nan_in_loss_and_grad,
        check_spiky_loss=a.check_for_spiky_loss,
        check_large_grads=a.check_for_large_grads,
        rank=process.rank,
        device=str(process.device),
    )
    trainer = Trainer(
        args=a,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        microbatches=microbatches,
        device=process.device,
        train_iters=resolved_train_iters(a) or 0,
        writer=writer,
        timers=timers,
        log=log_last,
        checks=checks,
        dp_cp_group=state.group("dp-cp"),
        grad_accumulator=accumulator,
        world_size=process.world_size,
        rank=process.rank,
    )
    if trainer_out is not None:
        trainer_out.append(trainer)
    try:
        if not a.skip_train and data.do_train:
            log("training ...")
            log(datetime_marker("before the start of training step"))
            trainer.train(data.train, data.valid if data.do_valid else [])
            log(datetime_marker("after training is done"))
        else:
            log("skipping training (--skip-train) ...")
        iteration = trainer.state.iteration
        if data.do_valid:
            trainer.evaluate_and_print(
                f"iteration {iteration} on validation set", data.valid, write=not a.skip_train
            )
        if data.do_test:
            trainer.evaluate_and_print(
                f"iteration {iteration} on test set", [data.test], write=not a.skip_train
            )
    finally:
        writer.close()
        stop_distributed()
    return 0
