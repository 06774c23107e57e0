"""One pre-LN transformer layer: x + attn(norm(x)), then x + mlp(norm(x)).

Each sublayer output joins the residual stream through bias-dropout-add
(``residual + dropout(out + bias)``). Selective recomputation
(``--recompute-granularity selective``) is handled here:
- ``core_attn``: the attention kernel is recomputed (in ``SelfAttention``);
- ``layernorm``: each norm is recomputed together with the projection that consumes it, so
  the norm output is not kept for the backward pass;
- ``mlp``: the whole MLP is recomputed.
- ``moe``: an MoE layer's whole MLP is recomputed; ``moe_act`` (the experts' activation) and
  ``shared_experts`` are handled inside the MoE layer (gpt-moe).
The MoE module names do not apply to dense layers, nor ``mla_up_proj`` to these.

With fused kernels on, the whole layer runs as the provider's compiled region (one graph
shared by all layers); ``forward_impl`` is the math itself.
"""

from __future__ import annotations

from typing import Any

import torch
from gpt_moe.layer import MoEGroups
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpt_models.attention import SelfAttention
from gpt_models.mlp import MLP
from gpt_models.moe import build_moe_mlp
from gpt_models.provider import Provider
from gpt_models.rotary import RotaryTables
from gpt_models.spec import LayerSpec
from gpt_models.transformer_config import TransformerConfig


class TransformerLayer(nn.Module):
    """input_layernorm, self_attention, pre_mlp_layernorm, mlp (the original's local names)."""

    def __init__(
        self,
        config: TransformerConfig,
        spec: LayerSpec,
        provider: Provider,
        layer_number: int,
        *,
        device: torch.device | str | None = None,
        aux_losses: Any = None,
        moe_groups: MoEGroups | None = None,
    ) -> None:
        super().__init__()
        self.layer_number = layer_number  # global, 1-based
        self.is_moe = spec.mlp == "moe"
        self.hidden_dropout = config.hidden_dropout
        self.post_layernorm_residual = config.apply_residual_connection_post_layernorm
        self.input_layernorm = provider.norm(config.hidden_size, device)
        self.self_attention = SelfAttention(
            config, provider, layer_number, apply_rope=spec.apply_rope, device=device
        )
        self.pre_mlp_layernorm = provider.norm(config.hidden_size, device)
        if self.is_moe:
            self.mlp = build_moe_mlp(
                config,
                provider,
                layer_number,
                aux_losses=aux_losses,
                groups=moe_groups or MoEGroups(),
                device=device,
            )
        else:
            self.mlp = MLP(config, provider, device=device)
        self.bias_dropout_add = provider.bias_dropout_add()
        # Routing has data-dependent shapes (tokens per expert): MoE layers run eagerly.
        self.region = None if self.is_moe else provider.layer_region()
        modules = config.selective_recompute_modules
        self.recompute_layernorm = "layernorm" in modules
        self.recompute_mlp = "mlp" in modules
        self.recompute_moe = self.is_moe and "moe" in modules

    def _recomputing(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def _norm_and_qkv(
        self, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        normed = self.input_layernorm(hidden)
        return (normed, *self.self_attention.project_qkv(normed))

    def _norm_and_fc1(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.pre_mlp_layernorm(hidden)
        return normed, self.mlp.fc1(normed)

    def _norm_and_mlp(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.pre_mlp_layernorm(hidden)
        return normed, self.mlp(normed)[0]

    def _attention_block(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: RotaryTables | None,
    ) -> torch.Tensor:
        if self.recompute_layernorm and self._recomputing():
            normed, q, k, v = checkpoint(self._norm_and_qkv, hidden, use_reentrant=False)
        else:
            normed, q, k, v = self._norm_and_qkv(hidden)
        out, bias = self.self_attention.attend(q, k, v, attention_mask, rotary)
        residual = normed if self.post_layernorm_residual else hidden
        return self.bias_dropout_add(out, bias, residual, self.hidden_dropout, self.training)

    def _moe_block(self, hidden: torch.Tensor) -> torch.Tensor:
        normed = self.pre_mlp_layernorm(hidden)
        if self.recompute_moe and self._recomputing():
            out, bias = checkpoint(self.mlp, normed, use_reentrant=False)
        else:
            out, bias = self.mlp(normed)
        residual = normed if self.post_layernorm_residual else hidden
        return self.bias_dropout_add(out, bias, residual, self.hidden_dropout, self.training)

    def _mlp_block(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.is_moe:
            return self._moe_block(hidden)
        recomputing = self._recomputing()
        if self.recompute_mlp and recomputing:
            if self.recompute_layernorm:
                normed, out = checkpoint(self._norm_and_mlp, hidden, use_reentrant=False)
            else:
                normed = self.pre_mlp_layernorm(hidden)
                out = checkpoint(lambda x: self.mlp(x)[0], normed, use_reentrant=False)
            bias = self.mlp.linear_fc2.bias
        else:
            if self.recompute_layernorm and recomputing:
                normed, fc1_out = checkpoint(self._norm_and_fc1, hidden, use_reentrant=False)
            else:
                normed, fc1_out = self._norm_and_fc1(hidden)
            out, bias = self.mlp.finish(fc1_out)
        residual = normed if self.post_layernorm_residual else hidden
        return self.bias_dropout_add(out, bias, residual, self.hidden_dropout, self.training)

    def forward_impl(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: RotaryTables | None = None,
    ) -> torch.Tensor:
        """The layer's math (what the compiled region traces)."""
        hidden = self._attention_block(hidden, attention_mask, rotary)
        return self._mlp_block(hidden)

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: RotaryTables | None = None,
    ) -> torch.Tensor:
        if self.region is not None:
            return self.region(self, hidden, attention_mask, rotary)
        return self.forward_impl(hidden, attention_mask, rotary)
