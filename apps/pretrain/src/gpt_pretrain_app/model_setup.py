"""The tokenizer, the model and its initial weights, from the run's typed configs.

The original builds the tokenizer first (it fixes the padded vocabulary size), seeds every
generator, then builds the model and draws its weights from the seeded CPU generator
(`--use-cpu-initialization`), so with the same seed the same weights come out on any device.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from gpt_models import GPTModel, TransformerConfig
from gpt_models.config import TransformerImplConfig
from gpt_models.kernels.compiled import CompileChoice
from gpt_models.partition import ContextParallelPartition, TensorParallelPartition
from gpt_models.provider import provider_for
from gpt_moe.layer import MoEGroups
from gpt_tokenizers import SFTPromptConfig, build_tokenizer, resolve_padded_vocab_size

from .run_config import RunConfig, expect_typed

Log = Callable[[str], None]


def build_tokenizer_and_vocab(run: RunConfig, log: Log | None) -> tuple[Any, int]:
    """The tokenizer and the padded vocabulary size (setup puts it in the RunConfig)."""
    expect_typed(run, RunConfig, "build_tokenizer_and_vocab")
    flags = run.tokenizer
    tokenizer = build_tokenizer(flags, log=log, sft_prompt=run.part(SFTPromptConfig))
    padded = resolve_padded_vocab_size(
        flags,
        run.vocab,
        tokenizer,
        tensor_model_parallel_size=run.distributed.tensor_model_parallel_size,
        log=log,
    )
    return tokenizer, padded


def transformer_engine_available() -> bool:
    return importlib.util.find_spec("transformer_engine") is not None


def build_transformer_config(run: RunConfig, warn: Log) -> TransformerConfig:
    """The run's TransformerConfig; `--transformer-impl transformer_engine` without Transformer
    Engine installed runs the same model on the local PyTorch path, with one warning."""
    expect_typed(run, RunConfig, "build_transformer_config")
    impl = run.part(TransformerImplConfig).transformer_impl
    if impl == "transformer_engine" and not transformer_engine_available():
        warn(
            "warning: --transformer-impl transformer_engine: Transformer Engine is not installed; "
            "running the same model on the local PyTorch implementation"
        )
    return run.transformer_config()


def build_model(
    config: TransformerConfig,
    device: torch.device,
    *,
    compile: CompileChoice = "auto",
    partition: TensorParallelPartition | None = None,
    context: ContextParallelPartition | None = None,
    rng_fork: Callable[[], AbstractContextManager] | None = None,
    moe_groups: MoEGroups | None = None,
) -> GPTModel:
    """The model with its weights drawn from the (already seeded) CPU generator, then moved.

    Drawing on the CPU whatever the device keeps the weights identical across devices, as the
    original's `--use-cpu-initialization`; the draw order is the original's. `compile` is the
    choice the CLI read from the environment (`cli.compile_choice`). `partition` and `context`
    are this rank's tensor- and context-parallel slice (the whole model when None); each rank
    draws the full master weights and keeps its slice, so any layout starts from the same model.
    `moe_groups` are the MoE layers' process groups (expert parallelism).
    `rng_fork` (the RNG tracker's fork) is the stream dropout inside the tensor-parallel region
    draws from.
    """
    expect_typed(config, TransformerConfig, "build_model")
    provider = provider_for(config, partition, context=context, compile=compile, rng_fork=rng_fork)
    model = GPTModel(config, provider=provider, device="cpu", moe_groups=moe_groups)
    return model.to(device)


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters of this model chunk (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())
