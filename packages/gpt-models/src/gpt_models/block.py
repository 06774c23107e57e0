"""The stack of transformer layers plus the final norm (the original's ``decoder``).

Full activation recomputation (``--recompute-granularity full``) lives here:
- ``uniform``: the layers are cut into chunks of ``recompute_num_layers`` and only each
  chunk's input is kept; the chunk is re-run in the backward pass;
- ``block``: the first ``recompute_num_layers`` layers of this stage are recomputed one by
  one, the rest keep their activations.
As in the original it applies in training mode only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpt_models.layer import TransformerLayer
from gpt_models.provider import Provider
from gpt_models.rotary import RotaryTables
from gpt_models.spec import LayerSpec
from gpt_models.transformer_config import TransformerConfig


class TransformerBlock(nn.Module):
    """``layers.{i}`` (i local to this stage) and ``final_layernorm`` on the last stage."""

    def __init__(
        self,
        config: TransformerConfig,
        specs: Sequence[LayerSpec],
        provider: Provider,
        layer_numbers: Sequence[int],
        *,
        post_process: bool = True,
        device: torch.device | str | None = None,
        aux_losses: Any = None,
        moe_groups: Any = None,
    ) -> None:
        super().__init__()
        if len(specs) != len(layer_numbers):
            raise ValueError(f"{len(specs)} layer specs for {len(layer_numbers)} layers")
        self.recompute_granularity = config.recompute_granularity
        self.recompute_method = config.recompute_method
        self.recompute_num_layers = config.recompute_num_layers or 0
        self.layers = nn.ModuleList(
            TransformerLayer(
                config,
                spec,
                provider,
                number,
                device=device,
                aux_losses=aux_losses,
                moe_groups=moe_groups,
            )
            for spec, number in zip(specs, layer_numbers)
        )
        self.final_layernorm = provider.norm(config.hidden_size, device) if post_process else None

    def _run_layers(
        self,
        start: int,
        end: int,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: RotaryTables | None,
    ) -> torch.Tensor:
        for layer in self.layers[start:end]:
            hidden = layer(hidden, attention_mask, rotary)
        return hidden

    def _checkpointed(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: RotaryTables | None,
    ) -> torch.Tensor:
        n, k = len(self.layers), self.recompute_num_layers
        if self.recompute_method == "uniform":
            for start in range(0, n, k):
                hidden = checkpoint(
                    self._run_layers,
                    start,
                    min(start + k, n),
                    hidden,
                    attention_mask,
                    rotary,
                    use_reentrant=False,
                )
            return hidden
        for index in range(n):  # block
            if index < k:
                hidden = checkpoint(
                    self._run_layers,
                    index,
                    index + 1,
                    hidden,
                    attention_mask,
                    rotary,
                    use_reentrant=False,
                )
            else:
                hidden = self._run_layers(index, index + 1, hidden, attention_mask, rotary)
        return hidden

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: RotaryTables | None = None,
    ) -> torch.Tensor:
        if self.recompute_granularity == "full" and self.training and torch.is_grad_enabled():
            hidden = self._checkpointed(hidden, attention_mask, rotary)
        else:
            hidden = self._run_layers(0, len(self.layers), hidden, attention_mask, rotary)
        if self.final_layernorm is not None:
            hidden = self.final_layernorm(hidden)
        return hidden
