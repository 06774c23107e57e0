"""The attention backends agree with the unfused reference (causal, explicit masks, GQA)."""

from __future__ import annotations

import math

import pytest
import torch
from gpt_models.kernels.attention import DotProductAttention, SDPAttention
from gpt_models.kernels.softmax import causal_mask, scale_mask_softmax_reference


def _unfused(layer_number: int = 1, scaling: bool = False) -> DotProductAttention:
    return DotProductAttention(
        kv_channels=8,
        layer_number=layer_number,
        attention_dropout=0.0,
        apply_query_key_layer_scaling=scaling,
        softmax_in_fp32=False,
        softmax=scale_mask_softmax_reference,
    )


def _qkv(heads: int = 4, groups: int = 2, s: int = 6, b: int = 2):
    torch.manual_seed(0)
    return torch.randn(s, b, heads, 8), torch.randn(s, b, groups, 8), torch.randn(s, b, groups, 8)


def _naive(q, k, v, mask):
    heads, groups = q.shape[2], k.shape[2]
    k = k.repeat_interleave(heads // groups, dim=2)
    v = v.repeat_interleave(heads // groups, dim=2)
    scores = torch.einsum("sbnd,tbnd->bnst", q, k) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(mask, float("-inf"))
    out = torch.einsum("bnst,tbnd->sbnd", scores.softmax(-1), v)
    return out.reshape(q.shape[0], q.shape[1], -1)


@pytest.mark.parametrize("groups", [4, 2, 1])
def test_unfused_attention_matches_naive_causal_gqa(groups: int) -> None:
    q, k, v = _qkv(groups=groups)
    expected = _naive(q, k, v, causal_mask(6, 6, "cpu"))
    torch.testing.assert_close(_unfused()(q, k, v, None), expected)


@pytest.mark.parametrize("groups", [4, 2])
def test_sdpa_backend_equals_unfused_with_and_without_mask(groups: int) -> None:
    q, k, v = _qkv(groups=groups)
    sdpa = SDPAttention(kv_channels=8, attention_dropout=0.0)
    torch.testing.assert_close(sdpa(q, k, v, None), _unfused()(q, k, v, None))
    # A document-reset mask as the dataloader builds it: True = masked.
    mask = causal_mask(6, 6, "cpu").expand(2, 1, 6, 6).clone()
    mask[0, :, 3:, :3] = True
    torch.testing.assert_close(sdpa(q, k, v, mask), _unfused()(q, k, v, mask))
    assert not torch.allclose(sdpa(q, k, v, mask), sdpa(q, k, v, None))


def test_query_key_layer_scaling_leaves_fp32_attention_unchanged() -> None:
    q, k, v = _qkv()
    scaled = _unfused(layer_number=3, scaling=True)
    assert scaled.coeff == 3.0 and scaled.softmax_in_fp32
    torch.testing.assert_close(scaled(q, k, v, None), _unfused()(q, k, v, None))


def test_attention_dropout_applies_only_in_training() -> None:
    q, k, v = _qkv()
    attn = DotProductAttention(
        kv_channels=8,
        layer_number=1,
        attention_dropout=0.5,
        apply_query_key_layer_scaling=False,
        softmax_in_fp32=False,
        softmax=scale_mask_softmax_reference,
    )
    attn.eval()
    torch.testing.assert_close(attn(q, k, v, None), _unfused()(q, k, v, None))
    attn.train()
    assert not torch.allclose(attn(q, k, v, None), _unfused()(q, k, v, None))


@pytest.mark.gpu
@pytest.mark.parametrize("prefer_flash", [False, True])
def test_gpu_attention_kernels_match_unfused_in_bf16(prefer_flash: bool) -> None:
    q, k, v = (t.cuda().bfloat16() for t in _qkv(s=64))
    fast = SDPAttention(kv_channels=8, attention_dropout=0.0, prefer_flash_attn=prefer_flash)
    reference = _unfused()(q.float(), k.float(), v.float(), None)
    torch.testing.assert_close(fast(q, k, v, None).float(), reference, atol=2e-2, rtol=2e-2)
