"""From checked flags to a ready engine: validate (pretrain's checks), start the process
group, build the tokenizer and the model as pretrain does, load `--load`, wrap for generation."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from gpt_flags import from_namespace
from gpt_flags.flagspec import flag_fields
from gpt_inference.config import InferenceConfig
from gpt_inference.dynamic_engine import DynamicInferenceEngine, DynamicLimits
from gpt_inference.pipeline import PipelineLink
from gpt_inference.request import GenerationError
from gpt_inference.runner import ModelRunner
from gpt_inference.static_engine import StaticInferenceEngine
from gpt_parallel.parallel_state import ParallelState
from gpt_parallel.random import set_random_seed
from gpt_pretrain_app.checkpoint_load import check_load_flags, load_pretrained_weights
from gpt_pretrain_app.distributed import ProcessInfo, start_distributed
from gpt_pretrain_app.errors import ArgsError
from gpt_pretrain_app.flag_status import guard_flags
from gpt_pretrain_app.model_setup import (
    build_model,
    build_tokenizer_and_vocab,
    build_transformer_config,
)
from gpt_pretrain_app.parallel_setup import model_partitions
from gpt_pretrain_app.pipeline_setup import (
    build_model_chunks,
    pipeline_plan,
    tie_embeddings_across_stages,
)
from gpt_pretrain_app.run_config import RunConfig
from gpt_pretrain_app.validate import validate_args

from .config import TextGenerationConfig

Log = Callable[[str], None]


@dataclass(frozen=True)
class Generation:
    """What `infer` runs with."""

    config: RunConfig
    launcher: TextGenerationConfig
    inference: InferenceConfig
    process: ProcessInfo
    state: ParallelState
    tokenizer: Any
    engine: StaticInferenceEngine
    log: Log
    dynamic: DynamicInferenceEngine | None = None


def check_generation_layout(config: RunConfig) -> None:
    """What generation cannot run, refused before any work (one line naming the flag)."""
    d = config.distributed
    if d.context_parallel_size > 1:
        raise ArgsError("--context-parallel-size > 1: generation runs without context parallelism")
    if config.parallel.sequence_parallel:
        raise ArgsError("--sequence-parallel: generation runs without sequence parallelism")
    if d.virtual_pipeline_model_parallel_size is not None:
        raise ArgsError(
            "--num-layers-per-virtual-pipeline-stage: interleaved pipeline schedule is not yet "
            "supported for text generation"
        )


def set_up(args: argparse.Namespace) -> Generation:
    warn_lines: list[str] = []
    guard_flags(args, torch.cuda.is_available(), warn=warn_lines.append)
    launcher = from_namespace(TextGenerationConfig, args)
    inference = from_namespace(InferenceConfig, args)
    args = _without_launcher_flags(args)
    world_size = (
        dist.get_world_size() if dist.is_initialized() else int(os.getenv("WORLD_SIZE", "1"))
    )
    config = validate_args(args, world_size=world_size)
    check_generation_layout(config)
    check_load_flags(config)
    process = start_distributed(config.distributed)

    def log(text: str) -> None:
        if process.is_first:
            print(text, file=sys.stderr, flush=True)

    for text in [*warn_lines, *config.warnings]:
        log(text)
    state = ParallelState.build(
        config.distributed,
        config.expert,
        timeout=timedelta(minutes=config.distributed.distributed_timeout_minutes),
    )
    tokenizer, padded = build_tokenizer_and_vocab(config, log)
    config = config.with_padded_vocab(padded)
    config = config.with_model(build_transformer_config(config, log))
    set_random_seed(
        config.seed.seed,
        tp_rank=state.tp_rank,
        pp_rank=state.pp_rank,
        dp_rank=state.dp_rank,
        device_type=process.device.type,
    )
    model, link = _model(config, state, process)
    if config.checkpoint.load:
        load_pretrained_weights(
            model, config, tp_rank=state.tp_rank, pp_rank=state.pp_rank, log=log, warn=log
        )
    else:
        log("warning: no --load: generating with randomly initialised weights")
    model.eval()
    max_batch = inference.inference_max_batch_size
    if launcher.max_batch_size is not None:
        max_batch = max(max_batch, launcher.max_batch_size)
    runner = ModelRunner(model, link)
    engine = StaticInferenceEngine(
        runner,
        tokenizer,
        max_batch_size=max_batch,
        max_sequence_length=inference.inference_max_seq_length,
        max_tokens_to_oom=inference.max_tokens_to_oom,
    )
    dynamic = None
    if inference.inference_dynamic_batching:
        if link is not None:
            raise ArgsError("--inference-dynamic-batching: runs without pipeline parallelism")
        dynamic = DynamicInferenceEngine(runner, tokenizer, dynamic_limits(inference, max_batch))
        log(
            f"dynamic batching: {dynamic.layout.num_blocks} KV blocks of "
            f"{dynamic.layout.block_size} tokens, at most {dynamic.limits.max_requests} requests "
            f"and {dynamic.limits.max_tokens} tokens per step"
        )
    return Generation(config, launcher, inference, process, state, tokenizer, engine, log, dynamic)


def dynamic_limits(inference: InferenceConfig, max_batch: int) -> DynamicLimits:
    """The dynamic engine's limits: `--inference-max-requests` requests and
    `--inference-max-seq-length` tokens per step unless overridden, both scaled by the
    overflow factor when one is given."""
    factor = inference.inference_dynamic_batching_buffer_overflow_factor or 1.0
    max_requests = inference.inference_dynamic_batching_max_requests_override
    if max_requests is None:
        max_requests = max(1, int(max_batch * factor))
    max_tokens = inference.inference_dynamic_batching_max_tokens_override
    if max_tokens is None:
        max_tokens = max(1, int(inference.inference_max_seq_length * factor))
    try:
        return DynamicLimits(
            buffer_size_gb=inference.inference_dynamic_batching_buffer_size_gb,
            block_size=inference.inference_dynamic_batching_chunk_size,
            guaranteed_fraction=inference.inference_dynamic_batching_buffer_guaranteed_fraction,
            max_requests=max_requests,
            max_tokens=max_tokens,
            max_sequence_length=inference.inference_max_seq_length,
        )
    except GenerationError as err:
        raise ArgsError(str(err)) from None


def _without_launcher_flags(args: argparse.Namespace) -> argparse.Namespace:
    """The namespace pretrain's validation knows: the launcher's own flags taken out."""
    own = {field.name for field in flag_fields(TextGenerationConfig)}
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in own})


def _model(
    config: RunConfig, state: ParallelState, process: ProcessInfo
) -> tuple[torch.nn.Module, PipelineLink | None]:
    """This rank's model (its stage under pipeline parallelism) and its pipeline link."""
    tensor, context = model_partitions(config, state)
    if state.pp_size == 1:
        model = build_model(config.model, process.device, compile="off", partition=tensor)
        return model, None
    chunks = build_model_chunks(
        config,
        pipeline_plan(config),
        state.pp_rank,
        process.device,
        compile="off",
        partition=tensor,
        context=context,
    )
    tie_embeddings_across_stages(chunks, state)
    return chunks[0], PipelineLink.from_state(state, process.device)
