"""Core attention: softmax(Q K^T / sqrt(d)) V over [s, b, heads, dim] inputs.

Two implementations behind one interface:
- ``DotProductAttention`` (``--attention-backend unfused`` / ``local``): the plain math of the
  original's local path (baddbmm scores, query-key layer scaling, softmax in fp32, -10000 mask
  fill, dropout on the probabilities). It is the reference.
- ``SDPAttention`` (``fused`` / ``flash`` / ``auto``): torch's scaled_dot_product_attention,
  or flash-attn's kernel for ``flash`` on a GPU when it is installed and applicable.

Both take ``attention_mask`` as a bool tensor broadcastable to [b, 1, sq, sk] where True means
"do not attend", or None for causal attention, and return [sq, b, heads * dim].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gpt_models.kernels import matmul
from gpt_models.kernels.softmax import causal_mask

try:  # optional GPU kernel
    from flash_attn import flash_attn_func as _flash_attn_func
except ImportError:  # pragma: no cover - depends on the environment
    _flash_attn_func = None


class DotProductAttention(nn.Module):
    """The unfused attention math, exactly as the original's local backend orders it."""

    def __init__(
        self,
        *,
        kv_channels: int,
        layer_number: int,
        attention_dropout: float,
        apply_query_key_layer_scaling: bool,
        softmax_in_fp32: bool,
        softmax: Callable[..., torch.Tensor],
        softmax_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.layer_number = max(1, layer_number)
        self.softmax_scale = softmax_scale or 1.0 / math.sqrt(kv_channels)
        self.coeff: float | None = None
        if apply_query_key_layer_scaling:
            self.coeff = float(self.layer_number)
            self.softmax_scale /= self.coeff
        self.softmax_in_fp32 = softmax_in_fp32 or self.coeff is not None
        self.softmax = softmax
        self.attention_dropout = nn.Dropout(attention_dropout)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        sq, b, heads, dim = query.shape
        sk, groups = key.shape[0], key.shape[2]
        if heads != groups:
            key = key.repeat_interleave(heads // groups, dim=2)
            value = value.repeat_interleave(heads // groups, dim=2)
        q = query.reshape(sq, b * heads, dim).transpose(0, 1)  # [b*np, sq, hn]
        k = key.reshape(sk, b * heads, dim).transpose(0, 1)  # [b*np, sk, hn]
        scores = matmul.scaled_bmm(q, k.transpose(1, 2), self.softmax_scale).view(b, heads, sq, sk)
        if attention_mask is None and sq > 1:
            attention_mask = causal_mask(sq, sk, scores.device)
        probs = self.softmax(scores, attention_mask, self.coeff, self.softmax_in_fp32)
        probs = self.attention_dropout(probs)
        v = value.reshape(sk, b * heads, dim).transpose(0, 1)  # [b*np, sk, hn]
        context = matmul.bmm(probs.view(b * heads, sq, sk), v)  # [b*np, sq, hn]
        context = context.view(b, heads, sq, dim).permute(2, 0, 1, 3).contiguous()
        return context.view(sq, b, heads * dim)


class SDPAttention(nn.Module):
    """torch.nn.functional.scaled_dot_product_attention (flash-attn for 'flash' when usable)."""

    def __init__(
        self,
        *,
        kv_channels: int,
        attention_dropout: float,
        prefer_flash_attn: bool = False,
        softmax_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.softmax_scale = softmax_scale or 1.0 / math.sqrt(kv_channels)
        self.dropout_p = attention_dropout
        self.prefer_flash_attn = prefer_flash_attn

    def _flash_applicable(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> bool:
        return (
            self.prefer_flash_attn
            and _flash_attn_func is not None
            and attention_mask is None
            and query.is_cuda
            and query.dtype in (torch.float16, torch.bfloat16)
        )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        sq, b, heads, dim = query.shape
        dropout_p = self.dropout_p if self.training else 0.0
        if self._flash_applicable(query, attention_mask):
            out = _flash_attn_func(
                query.transpose(0, 1),
                key.transpose(0, 1),
                value.transpose(0, 1),
                dropout_p=dropout_p,
                softmax_scale=self.softmax_scale,
                causal=True,
            )  # [b, sq, np, hn]
            return out.transpose(0, 1).reshape(sq, b, heads * dim)
        if attention_mask is None and sq != key.shape[0]:
            attention_mask = causal_mask(sq, key.shape[0], query.device)
        q = query.permute(1, 2, 0, 3)  # [b, np, sq, hn]
        k = key.permute(1, 2, 0, 3)
        v = value.permute(1, 2, 0, 3)
        mask = None if attention_mask is None else ~attention_mask
        dtype = q.dtype
        if dropout_p > 0.0 and matmul.gemm_in_fp32(q):
            # With dropout SDPA takes its math path, whose bf16/fp16 bmm is slow on this CPU.
            q, k, v = q.float(), k.float(), v.float()
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=dropout_p,
            is_causal=attention_mask is None and sq > 1,
            scale=self.softmax_scale,
            enable_gqa=k.shape[1] != heads,
        )  # [b, np, sq, hn]
        return out.to(dtype).permute(2, 0, 1, 3).reshape(sq, b, heads * dim)
