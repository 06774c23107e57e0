"""One pre-LN transformer layer: x + attn(norm(x)), then x + mlp(norm(x)).

Each sublayer output joins the residual stream through bias-dropout-add
(``residual + dropout(out + bias)``). Selective recomputation
(``--recompute-granularity selective``) is handled here:
- ``core_attn``: the attention kernel is recomputed (in ``SelfAttention``);
- ``layernorm``: each norm is recomputed together with the projection that consumes it, so
  the norm output is not kept for the backward pass;
- ``mlp``: the whole MLP is recomputed.
The MoE/MLA module names (``moe_act``, ``moe``, ``shared_experts``, ``mla_up_proj``) do not
apply to dense layers.

With fused kernels on, the whole layer runs as the provider's compiled region (one graph
shared by all layers); ``forward_impl`` is the math itself.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpt_models.attention import SelfAttention
from gpt_models.mlp import MLP
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
    ) -> None:
        super().__init__()
        self.layer_number = layer_number  # global, 1-based
        self.hidden_dropout = config.hidden_dropout
        self.post_layernorm_residual = config.apply_residual_connection_post_layernorm
        self.input_layernorm = provider.norm(config.hidden_size, device)
        self.self_attention = SelfAttention(
            config, provider, layer_number, apply_rope=spec.apply_rope, device=device
        )
        self.pre_mlp_layernorm = provider.norm(config.hidden_size, device)
        self.mlp = MLP(config, provider, device=device)
        self.bias_dropout_add = provider.bias_dropout_add()
        self.region = provider.layer_region()
        modules = config.selective_recompute_modules
        self.recompute_layernorm = "layernorm" in modules
        self.recompute_mlp = "mlp" in modules

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

    def _mlp_block(self, hidden: torch.Tensor) -> torch.Tensor:
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
