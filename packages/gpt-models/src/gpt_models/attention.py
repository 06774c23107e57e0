"""Self-attention with the original's fused QKV layout (GQA and MHA).

``linear_qkv`` produces, per query group g, ``[q heads of g ; k_g ; v_g]`` (each head
``kv_channels`` wide), i.e. the weight is ``[ng * (nh/ng + 2) * d, h]`` arranged group by group.
The forward views the projection as ``[s, b, ng, (nh/ng + 2) * d]`` and splits it, exactly as
the original does, so checkpoints load without any permutation. Under tensor parallelism each
rank holds whole query groups (``nh`` and ``ng`` per rank from the provider's partition), so
the same layout holds per rank and ``linear_qkv`` splits by rows, ``linear_proj`` by columns.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpt_models.provider import Provider
from gpt_models.rotary import RotaryTables
from gpt_models.transformer_config import TransformerConfig


class SelfAttention(nn.Module):
    """linear_qkv -> (q/k norm) -> RoPE -> core attention -> linear_proj."""

    def __init__(
        self,
        config: TransformerConfig,
        provider: Provider,
        layer_number: int,
        *,
        apply_rope: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        assert config.kv_channels is not None
        # Heads and groups on this rank; the linears take the full widths and split them.
        self.num_heads = provider.partition.heads_per_rank(config)
        self.num_groups = provider.partition.groups_per_rank(config)
        self.head_dim = config.kv_channels
        self.apply_rope = apply_rope
        projection = config.num_attention_heads * self.head_dim
        qkv_width = (config.num_attention_heads + 2 * config.num_groups) * self.head_dim
        # Registration order follows the original so state-dict keys come out in its order.
        self.core_attention = provider.core_attention(layer_number)
        self.linear_proj = provider.row_parallel_linear(
            projection,
            config.hidden_size,
            bias=config.add_bias_linear,
            skip_bias_add=True,
            device=device,
        )
        self.linear_qkv = provider.column_parallel_linear(
            config.hidden_size,
            qkv_width,
            bias=config.add_bias_linear or config.add_qkv_bias,
            skip_bias_add=False,
            device=device,
        )
        self.q_layernorm = provider.qk_norm(self.head_dim, device)
        self.k_layernorm = provider.qk_norm(self.head_dim, device)
        self._apply_rope = provider.apply_rope()
        self.rotary_interleaved = config.rotary_interleaved
        self.recompute_core_attention = "core_attn" in config.selective_recompute_modules
        # Each tensor-parallel rank drops out its own heads' probabilities (None: one rank).
        self._in_tensor_parallel_rng = provider.tensor_parallel_rng_runner()

    def project_qkv(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[s, b, h] -> q [s, b, nh, d], k and v [s, b, ng, d] (q/k norms applied)."""
        mixed, _ = self.linear_qkv(hidden)
        s, b = mixed.shape[:2]
        per_group = self.num_heads // self.num_groups
        mixed = mixed.view(s, b, self.num_groups, (per_group + 2) * self.head_dim)
        query, key, value = torch.split(
            mixed, [per_group * self.head_dim, self.head_dim, self.head_dim], dim=3
        )
        query = query.reshape(s, b, self.num_heads, self.head_dim)
        if self.q_layernorm is not None:
            query = self.q_layernorm(query)
        if self.k_layernorm is not None:
            key = self.k_layernorm(key)
        return query, key, value

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: RotaryTables | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """RoPE, core attention and the output projection; returns (output, unadded bias)."""
        if rotary is not None and self.apply_rope:
            query = self._apply_rope(query, rotary.cos, rotary.sin, self.rotary_interleaved)
            key = self._apply_rope(key, rotary.cos, rotary.sin, self.rotary_interleaved)
        if self._in_tensor_parallel_rng is None:
            context = self._core(query, key, value, attention_mask)
        else:
            context = self._in_tensor_parallel_rng(self._core, query, key, value, attention_mask)
        return self.linear_proj(context)

    def _core(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Core attention, recomputed in backward with --recompute-modules core_attn (the
        recomputation restores the RNG state the forward drew its dropout from)."""
        if self.recompute_core_attention and self.training and torch.is_grad_enabled():
            return checkpoint(
                self.core_attention, query, key, value, attention_mask, use_reentrant=False
            )
        return self.core_attention(query, key, value, attention_mask)

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        rotary: RotaryTables | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query, key, value = self.project_qkv(hidden)
        return self.attend(query, key, value, attention_mask, rotary)
