"""One forward step of a GPT model at given positions, for generation.

The model's own modules do the work (embedding, layers, final norm, output layer); what
differs from training is only that positions need not start at 0 (a decode step, a prefill
chunk, rows at different positions), so the learned position ids and the rotary tables are
taken at those positions, and attention goes through a KV store (`kv_cache.cached_attention`).
With pipeline parallelism each stage runs its layers and passes the hidden states on
(`gpt_inference.pipeline`); the last stage's logits reach every stage.
"""

from __future__ import annotations

from typing import Protocol

import torch
from gpt_models.rotary import RotaryTables
from torch import nn

from gpt_inference.kv_cache import KVStore, cached_attention


class StageLink(Protocol):
    """How a pipeline stage gets its input and hands on its output (None: one stage)."""

    def receive(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor: ...

    def send(self, hidden: torch.Tensor) -> None: ...

    def share_logits(self, logits: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor: ...


class ModelRunner:
    """Runs `model` (one stage of it under pipeline parallelism) for generation."""

    def __init__(self, model: nn.Module, link: StageLink | None = None) -> None:
        self.model = model
        self.link = link
        config = model.config
        self.hidden_size = config.hidden_size
        self.dtype = config.params_dtype
        self.padded_vocab_size = config.padded_vocab_size
        self.max_positions = config.max_position_embeddings

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _rotary(self, positions: torch.Tensor) -> RotaryTables | None:
        rope = self.model.rotary_pos_emb
        if rope is None:
            return None
        tables = rope(int(positions.max()) + 1, positions.device, self.dtype)
        index = positions.transpose(0, 1)  # [s, b]
        return RotaryTables(cos=tables.cos[:, 0][index], sin=tables.sin[:, 0][index])

    @torch.inference_mode()
    def logits(
        self, input_ids: torch.Tensor, positions: torch.Tensor, store: KVStore
    ) -> torch.Tensor:
        """[b, s] token ids at [b, s] positions -> [b, s, padded V] fp32-or-param logits."""
        model = self.model
        b, s = input_ids.shape
        if model.pre_process:
            hidden = model.embedding(input_ids, positions)
        else:
            assert self.link is not None
            hidden = self.link.receive((s, b, self.hidden_size), self.dtype)
        with cached_attention(model, store):
            hidden = model.decoder(hidden, None, self._rotary(positions))
        logits = None
        if model.post_process:
            out = model.output_layer(hidden, model.output_weight())
            logits = model.output_layer.gather_vocab(out).transpose(0, 1).contiguous()
        elif self.link is not None:
            self.link.send(hidden)
        if self.link is not None:
            logits = self.link.share_logits(logits, (b, s, self.padded_vocab_size))
        assert logits is not None
        return logits
