"""Pipeline parallelism in the run: this rank's model chunks, the word embeddings tied across
the first and last stages, and one pipelined forward/backward of an iteration.

The stage plan (which global layers each chunk holds, and whether it embeds or computes the
loss) comes from ``gpt_parallel.pipeline_layout``; the schedule (1F1B, interleaved, forward
only) from ``gpt_parallel.pipeline``. Here they meet the model and the data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from gpt_models import GPTModel
from gpt_models.kernels.compiled import CompileChoice
from gpt_models.partition import ContextParallelPartition, TensorParallelPartition
from gpt_models.provider import provider_for
from gpt_moe.layer import MoEGroups
from gpt_parallel.collectives import all_reduce_, group_size
from gpt_parallel.parallel_state import ParallelState
from gpt_parallel.pipeline.engine import run_pipeline_schedule
from gpt_parallel.pipeline_layout import PipelinePlan, plan_from_config
from torch import nn

from .run_config import RunConfig

_LAYER_KEY = re.compile(r"^decoder\.layers\.(\d+)\.")


class ModelChunks(nn.ModuleList):
    """This rank's model chunks (one per virtual pipeline stage), as one module."""

    @property
    def config(self) -> Any:
        return self[0].config


def pipeline_plan(run: RunConfig) -> PipelinePlan:
    """Every stage's layers from the pipeline flags (one line naming them when they do not fit)."""
    return plan_from_config(run.distributed, num_layers=run.model.num_layers)


def build_model_chunks(
    run: RunConfig,
    plan: PipelinePlan,
    pp_rank: int,
    device: torch.device,
    *,
    compile: CompileChoice,
    partition: TensorParallelPartition,
    context: ContextParallelPartition,
    rng_fork: Callable[[], AbstractContextManager] | None = None,
    moe_groups: MoEGroups | None = None,
) -> ModelChunks:
    """This pipeline rank's chunks, each drawing exactly the one-process model's weights for
    the layers it holds (from ``--seed``, whatever the stage: the original instead seeds
    stage ``p`` with ``seed + 100 * p``, so its stages start from other weights)."""
    config = run.model
    provider = provider_for(config, partition, context=context, compile=compile, rng_fork=rng_fork)
    chunks = []
    for stage in plan.rank_stages(pp_rank):
        chunk = GPTModel(
            config,
            provider=provider,
            pre_process=stage.pre_process,
            post_process=stage.post_process,
            layer_numbers=stage.layer_numbers,
            device="cpu",
            init_generator=torch.Generator().manual_seed(run.seed.seed),
            layout_independent_init=True,
            moe_groups=moe_groups,
        )
        chunks.append(chunk.to(device))
    return ModelChunks(chunks)


def tie_embeddings_across_stages(chunks: ModelChunks, state: ParallelState) -> None:
    """Tied embeddings with the embedding and the output layer on different stages: the last
    stage's output weight is a copy of the first stage's word embeddings, made equal now (the
    original zeroes it and all-reduces over the first+last group) and kept equal by summing
    their gradients every step. The copy is marked ``shared`` so norms count it once."""
    if not chunks.config.share_embeddings_and_output_weights or state.pp_size == 1:
        return
    group = state.group("embd")
    for chunk in chunks:
        if chunk.pre_process:
            chunk.embedding.word_embeddings.weight.shared_embedding = True
        if chunk.post_process and not chunk.pre_process:
            weight = chunk.output_layer.weight
            weight.shared = True
            weight.shared_embedding = True
            with torch.no_grad():
                weight.zero_()
    for param in tied_embedding_params(chunks):
        with torch.no_grad():
            all_reduce_(param.data, group, "sum")


def tied_embedding_params(chunks: nn.Module) -> list[nn.Parameter]:
    """The word embeddings / their output-layer copy that this rank holds (pipeline only)."""
    return [p for p in chunks.parameters() if getattr(p, "shared_embedding", False)]


def global_named_parameters(chunks: ModelChunks) -> Iterator[tuple[str, nn.Parameter]]:
    """Parameters named as in the one-process model (global layer numbers); the output
    layer's copy of tied embeddings is skipped."""
    for chunk in chunks:
        for name, param in chunk.named_parameters():
            if getattr(param, "shared", False) and name == "output_layer.weight":
                continue
            match = _LAYER_KEY.match(name)
            if match:
                number = chunk.decoder.layers[int(match[1])].layer_number
                name = f"decoder.layers.{number - 1}." + name[match.end() :]
            yield name, param


@dataclass
class PipelineStep:
    """What a pipelined iteration needs besides the chunks and the data."""

    pp_group: Any
    tensor_shape: tuple[int, ...]
    dtype: torch.dtype
    microbatch_group_size: int | None
    last_rank_in_pipeline: int

    @classmethod
    def build(cls, run: RunConfig, state: ParallelState) -> PipelineStep:
        d = run.distributed
        seq = run.data.seq_length // d.context_parallel_size
        if run.parallel.sequence_parallel:
            seq //= d.tensor_model_parallel_size
        model = run.model
        dtype = torch.float32 if model.fp32_residual_connection else model.params_dtype
        return cls(
            pp_group=state.group("pp"),
            tensor_shape=(seq, run.parallel.micro_batch_size, model.hidden_size),
            dtype=dtype,
            microbatch_group_size=d.microbatch_group_size_per_vp_stage,
            last_rank_in_pipeline=state.group_ranks("pp")[-1],
        )

    def run(
        self,
        chunks: ModelChunks,
        forward_step: Callable[[int, int, torch.Tensor | None], tuple[torch.Tensor, Any]],
        num_microbatches: int,
        *,
        forward_only: bool,
        no_sync: Callable[[], Any] | None,
        grad_scale: Callable[[torch.Tensor], torch.Tensor] | None,
        device: torch.device,
    ) -> list[Any]:
        return run_pipeline_schedule(
            model_chunks=list(chunks),
            forward_step=forward_step,
            num_microbatches=num_microbatches,
            tensor_shape=self.tensor_shape,
            dtype=self.dtype,
            pp_group=self.pp_group,
            forward_only=forward_only,
            microbatch_group_size_per_vp_stage=self.microbatch_group_size,
            no_sync=no_sync,
            grad_scale=grad_scale,
            device=device,
        )

    def share_token_count(self, tokens: torch.Tensor) -> torch.Tensor:
        """The iteration's token count, known on the last stage, on every stage."""
        if group_size(self.pp_group) > 1:
            torch.distributed.broadcast(tokens, src=self.last_rank_in_pipeline, group=self.pp_group)
        return tokens
