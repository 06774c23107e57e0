"""What a loader hands a saver: the model's description, then its tensors part by part.

The original converter's protocol (§4.6 of the reference): a metadata message, then
``embeddings``, ``transformer layer N`` for each layer, ``final norm`` and ``output layer``, every
tensor full (unsplit). Here a part's tensors carry our (the original's local-spec) state-dict
names with the global layer index, so a saver never needs to know where they came from.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import torch
from gpt_models.transformer_config import TransformerConfig


@dataclass(frozen=True)
class ModelMetadata:
    """The loader's first message."""

    config: TransformerConfig
    """The architecture; ``padded_vocab_size`` is the number of embedding rows sent."""
    true_vocab_size: int | None
    """The tokenizer's vocabulary (rows beyond it are padding), when known."""
    make_vocab_size_divisible_by: int
    """The padding unit (times the target tensor-parallel size) a core saver pads to."""
    iteration: int | None
    """The source checkpoint's iteration; None for a release (HF) model."""
    source: str
    """Where the model came from, for messages (``core <dir>``, ``hf <dir>``)."""
    checkpoint_args: argparse.Namespace | None = None
    """The source's pickled args (core), the base of a core saver's args."""
    hf_config: dict[str, Any] | None = None
    """The source's config.json (hf), reused by an hf saver."""
    previous_tensor_parallel_size: int = 1
    previous_pipeline_parallel_size: int = 1
    previous_expert_parallel_size: int = 1
    dtype: torch.dtype = torch.float32
    """The dtype of the tensors sent."""


@dataclass(frozen=True)
class Part:
    """One message: a part name and its full tensors in our names."""

    name: str
    tensors: dict[str, torch.Tensor] = field(repr=False)
