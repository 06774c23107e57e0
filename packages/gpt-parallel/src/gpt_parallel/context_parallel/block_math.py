"""Attention of one query block against one key/value block, with its log-sum-exp.

Context parallelism computes causal attention piece by piece (per K/V block received over the
ring, or per local query chunk) and merges the pieces exactly with the log-sum-exp of each row
(online softmax). ``scaled_dot_product_attention`` does not return that log-sum-exp, so the
blocks use explicit math, in float32 for half-precision inputs and float64 for float64 inputs
(the exactness tests): small blocks, readable, and exact to rounding. The backward of a block
uses the *final* merged output and log-sum-exp (as FlashAttention's backward does), so the
per-block gradients add up to the exact gradient of the full attention.

Layout: ``[batch, heads, seq, head_dim]``. Grouped-query attention: ``k``/``v`` may have fewer
heads; query head ``i`` uses key/value head ``i // (heads // kv_heads)`` (the original's
grouping), and key/value gradients are summed over each group.
"""

from __future__ import annotations

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other floating type is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def expand_kv(kv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Repeat each key/value head for the query heads of its group (GQA)."""
    groups = num_heads // kv.shape[1]
    return kv if groups == 1 else kv.repeat_interleave(groups, dim=1)


def reduce_kv_grad(grad: torch.Tensor, num_kv_heads: int) -> torch.Tensor:
    """Sum the gradient of expanded key/value heads back onto each group's head."""
    b, h, s, d = grad.shape
    if h == num_kv_heads:
        return grad
    return grad.reshape(b, num_kv_heads, h // num_kv_heads, s, d).sum(dim=2)


def causal_keep_mask(q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """``[q_len, k_len]`` True where a query may see a key, causal aligned bottom-right (the
    last query sees every key), which is the mask of a query chunk against a key prefix."""
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)


def _scores(q: torch.Tensor, k: torch.Tensor, scale: float, causal: bool) -> torch.Tensor:
    scores = torch.matmul(q, expand_kv(k, q.shape[1]).transpose(-1, -2)) * scale
    if causal:
        keep = causal_keep_mask(q.shape[-2], k.shape[-2], q.device)
        scores = scores.masked_fill(~keep, float("-inf"))
    return scores


def block_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, lse)`` of softmax attention of ``q`` over ``k``/``v``: ``out`` [b, h, sq, d] and the
    row log-sum-exp ``lse`` [b, h, sq], both in the compute dtype. Differentiable by autograd."""
    dtype = compute_dtype(q.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    scores = _scores(q, k, scale, causal)
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.exp(scores - lse.unsqueeze(-1))
    return torch.matmul(probs, expand_kv(v, q.shape[1])), lse


def block_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dout: torch.Tensor,
    lse: torch.Tensor,
    delta: torch.Tensor,
    scale: float,
    causal: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dq, dk, dv)`` (compute dtype) of this block's share of the full attention.

    ``lse`` is the final log-sum-exp of the query rows over *all* keys and ``delta`` the row sums
    of ``dout * out`` with the final output, so the block's probabilities are exact.
    """
    dtype = compute_dtype(q.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    heads, kv_heads = q.shape[1], k.shape[1]
    probs = torch.exp(_scores(q, k, scale, causal) - lse.unsqueeze(-1))
    v_full = expand_kv(v, heads)
    dv = torch.matmul(probs.transpose(-1, -2), dout)
    dprobs = torch.matmul(dout, v_full.transpose(-1, -2))
    dscores = probs * (dprobs - delta.unsqueeze(-1)) * scale
    dq = torch.matmul(dscores, expand_kv(k, heads))
    dk = torch.matmul(dscores.transpose(-1, -2), q)
    return dq, reduce_kv_grad(dk, kv_heads), reduce_kv_grad(dv, kv_heads)


def merge_into(
    out: torch.Tensor, lse: torch.Tensor, block_out: torch.Tensor, block_lse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge a block's partial attention into the running ``(out, lse)`` (online softmax)."""
    new_lse = torch.logaddexp(lse, block_lse)
    out = out * torch.exp(lse - new_lse).unsqueeze(-1) + block_out * torch.exp(
        block_lse - new_lse
    ).unsqueeze(-1)
    return out, new_lse


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Plain single-device causal attention in the input dtype (the reference, and the core of
    the all-to-all variant)."""
    scale = default_scale(q) if scale is None else scale
    out, _ = block_forward(q, k, v, scale, causal=True)
    return out.to(q.dtype)


def default_scale(q: torch.Tensor) -> float:
    """``1 / sqrt(head_dim)``, the softmax scale when none is given."""
    return q.shape[-1] ** -0.5
