"""The tokenizer, the model and its initial weights, from the resolved flags.

The original builds the tokenizer first (it fixes the padded vocabulary size), seeds every
generator, then builds the model and draws its weights from the seeded CPU generator
(`--use-cpu-initialization`), so with the same seed the same weights come out on any device.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

import torch
from gpt_models import GPTModel, TransformerConfig
from gpt_models.original_args import transformer_config_from_original_args
from gpt_tokenizers import TokenizerConfig, build_tokenizer
from gpt_tokenizers.build import resolve_padded_vocab_size

from .errors import ArgsError

Log = Callable[[str], None]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def tokenizer_config(args: argparse.Namespace) -> TokenizerConfig:
    """The tokenizer flags (same dests) as gpt-tokenizers takes them."""
    names = {f.name for f in dataclasses.fields(TokenizerConfig)}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return TokenizerConfig(**values)


def build_tokenizer_and_vocab(args: argparse.Namespace, log: Log | None) -> tuple[Any, int]:
    """The tokenizer and the padded vocabulary size (also stored in args, as the original does)."""
    config = tokenizer_config(args)
    tokenizer = build_tokenizer(config, log=log)
    padded = resolve_padded_vocab_size(config, tokenizer, log=log)
    args.padded_vocab_size = padded
    return tokenizer, padded


def transformer_engine_available() -> bool:
    return importlib.util.find_spec("transformer_engine") is not None


def build_transformer_config(args: argparse.Namespace, warn: Log) -> TransformerConfig:
    """TransformerConfig from the flags; `--transformer-impl transformer_engine` without Transformer
    Engine installed runs the same model on the local PyTorch path, with one warning."""
    overrides: dict[str, Any] = {"params_dtype": DTYPES[args.params_dtype]}
    if args.transformer_impl == "transformer_engine" and not transformer_engine_available():
        warn(
            "warning: --transformer-impl transformer_engine: Transformer Engine is not installed; "
            "running the same model on the local PyTorch implementation"
        )
    if args.use_flash_attn:
        overrides["attention_backend"] = "flash"  # the legacy switch for the flash backend
    if args.position_embedding_type == "rope" and args.rope_type == "yarn":
        overrides["position_embedding_type"] = "yarn"
    try:
        return transformer_config_from_original_args(args, **overrides)
    except ValueError as err:  # TransformerConfigError: one line naming the flag
        raise ArgsError(str(err)) from None


def build_model(config: TransformerConfig, device: torch.device) -> GPTModel:
    """The model with its weights drawn from the (already seeded) CPU generator, then moved.

    Drawing on the CPU whatever the device keeps the weights identical across devices, as the
    original's `--use-cpu-initialization`; the draw order is the original's.
    """
    model = GPTModel(config, device="cpu")
    return model.to(device)


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters of this model chunk (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())
