"""Token (+ learned position) embeddings and the LM output layer.

The embedding output is sequence-first ``[s, b, h]``, as everything inside the model, and goes
through dropout with ``hidden_dropout``. The output layer computes logits over the padded
vocabulary; when the weights are tied it borrows the word-embedding matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gpt_models.kernels.logits import LogitsPool, output_logits
from gpt_models.transformer_config import TransformerConfig


class Embedding(nn.Module):
    """A lookup table ``weight`` [num_embeddings, dim] (initialised by the model)."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = nn.Parameter(
            torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype)
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class LanguageModelEmbedding(nn.Module):
    """``word_embeddings`` (+ ``position_embeddings`` for learned_absolute), then dropout.

    The tables come from the provider, which sizes and tags them (the word embeddings are
    split over tensor-parallel ranks by vocabulary rows, the positions replicated)."""

    def __init__(
        self,
        config: TransformerConfig,
        word_embeddings: nn.Module,
        position_embeddings: nn.Module | None,
        *,
        to_sequence_shards: Callable[[torch.Tensor], torch.Tensor] | None = None,
        dropout_runner: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        """``to_sequence_shards`` (sequence parallelism) keeps this rank's part of the
        sequence; None when the word embeddings already return sequence-first shards or
        there is no sequence parallelism."""
        super().__init__()
        self.word_embeddings = word_embeddings
        self.position_embeddings = position_embeddings
        self.to_sequence_shards = to_sequence_shards
        self.dropout_runner = dropout_runner
        """Runs the dropout in the model-parallel RNG stream (sequence shards differ per rank)."""
        self.sequence_first_words = bool(getattr(word_embeddings, "reduce_scatter", False))
        self.fp32_residual_connection = config.fp32_residual_connection
        self.embedding_dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[b, s] token ids (and positions) -> [s, b, h] (this rank's [s/tp, b, h] with
        sequence parallelism)."""
        embeddings = self.word_embeddings(input_ids)
        if not self.sequence_first_words:
            if self.position_embeddings is not None:
                if position_ids is None:
                    position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
                embeddings = embeddings + self.position_embeddings(position_ids)
            embeddings = embeddings.transpose(0, 1).contiguous()
            if self.to_sequence_shards is not None:
                embeddings = self.to_sequence_shards(embeddings)
        if self.fp32_residual_connection:
            embeddings = embeddings.float()
        if self.dropout_runner is not None:
            return self.dropout_runner(self.embedding_dropout, embeddings)
        return self.embedding_dropout(embeddings)


class OutputLayer(nn.Module):
    """Logits = hidden @ W^T over this rank's rows of the padded vocabulary; ``weight`` is None
    when tied. ``logits_pool`` keeps the logits' memory between steps (``kernels.logits``)."""

    def __init__(
        self,
        vocab_rows: int,
        hidden_size: int,
        *,
        own_weight: bool,
        logits_pool: LogitsPool | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.logits_pool = logits_pool
        self.weight: nn.Parameter | None = None
        if own_weight:
            self.weight = nn.Parameter(
                torch.empty(vocab_rows, hidden_size, device=device, dtype=dtype)
            )

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """[s, b, h] -> [s, b, V]; ``weight`` overrides the own weight (tied embeddings)."""
        weight = self.weight if weight is None else weight
        if weight is None:
            raise ValueError("the output layer is tied but no embedding weight was passed")
        return output_logits(hidden, weight, self.logits_pool)

    def gather_vocab(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits over the whole vocabulary (this layer already holds all of it)."""
        return logits

    def get_extra_state(self) -> Any:
        """Nothing to store; the original writes ``output_layer._extra_state`` too."""
        return None

    def set_extra_state(self, state: Any) -> None:
        """Accept the original's (empty) extra state."""
