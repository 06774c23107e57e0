"""``--cp-comm-type p2p``: ring attention over the load-balanced chunks.

Rank ``r`` of ``n`` holds query/key/value chunks ``r`` and ``2n-1-r`` (length ``c`` each). At
step ``i`` it holds the key/value block of rank ``src = r - i (mod n)`` and, as in the original,
computes only the chunk pairs the causal mask does not remove:

- ``src == r`` (step 0): both local query chunks against both local key chunks, causal;
- ``src < r``: both query chunks against the block's *first* chunk (``src``), no mask: that
  chunk is earlier than both query chunks, and its second chunk is later than both;
- ``src > r``: only the *second* query chunk (``2n-1-r``) against the whole block, no mask: it is
  later than both key chunks, while the first query chunk (``r``) is earlier than both.

Partial results merge with the log-sum-exp (online softmax). The backward sends the key/value
blocks around the ring again and the key/value gradients travel with them, one hop behind, so
each block's gradient is summed over every rank that used it and arrives back at its owner.
No rank ever holds more than its own block plus one block in flight.
"""

from __future__ import annotations

import torch

from gpt_parallel.collectives import ProcessGroup, group_rank, group_size
from gpt_parallel.context_parallel.block_math import (
    block_backward,
    block_forward,
    compute_dtype,
    merge_into,
)
from gpt_parallel.context_parallel.comm import start_ring_exchange

_KV_TAG, _DKV_TAG = 0, 1


def _step_kind(rank: int, src: int) -> str:
    """Which chunk pairs step ``src`` computes on ``rank``: diagonal, kv-first-half, q-second-half."""
    if src == rank:
        return "diagonal"
    return "kv_first_half" if src < rank else "q_second_half"


def _forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, group: ProcessGroup | None
) -> tuple[torch.Tensor, torch.Tensor]:
    size, rank = group_size(group), group_rank(group)
    half = q.shape[-2] // 2
    pending = start_ring_exchange([k, v], group, _KV_TAG) if size > 1 else None
    out, lse = block_forward(q, k, v, scale, causal=True)
    for step in range(1, size):
        kv = pending.wait()
        if step < size - 1:  # the next block travels while this one is computed
            pending = start_ring_exchange(kv, group, _KV_TAG)
        if _step_kind(rank, (rank - step) % size) == "kv_first_half":
            k_first, v_first = kv[0][..., :half, :], kv[1][..., :half, :]
            blk_out, blk_lse = block_forward(q, k_first, v_first, scale, False)
            out, lse = merge_into(out, lse, blk_out, blk_lse)
        else:
            blk_out, blk_lse = block_forward(q[..., half:, :], kv[0], kv[1], scale, False)
            tail_out, tail_lse = merge_into(out[..., half:, :], lse[..., half:], blk_out, blk_lse)
            out = torch.cat([out[..., :half, :], tail_out], dim=-2)
            lse = torch.cat([lse[..., :half], tail_lse], dim=-1)
    return out, lse


def _backward_step(
    kind: str,
    q: torch.Tensor,
    kv: list[torch.Tensor],
    dout: torch.Tensor,
    lse: torch.Tensor,
    delta: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dq, dk, dv)`` of one step, padded with zeros to the full local shapes."""
    if kind == "diagonal":
        return block_backward(q, kv[0], kv[1], dout, lse, delta, scale, True)
    half = q.shape[-2] // 2
    k, v = kv
    if kind == "kv_first_half":
        dk = torch.zeros_like(k, dtype=lse.dtype)
        dv = torch.zeros_like(v, dtype=lse.dtype)
        dq, dk[..., :half, :], dv[..., :half, :] = block_backward(
            q, k[..., :half, :], v[..., :half, :], dout, lse, delta, scale, False
        )
        return dq, dk, dv
    tail = slice(half, None)
    dq = torch.zeros_like(q, dtype=lse.dtype)
    dq[..., tail, :], dk, dv = block_backward(
        q[..., tail, :], k, v, dout[..., tail, :], lse[..., tail], delta[..., tail], scale, False
    )
    return dq, dk, dv


class RingAttention(torch.autograd.Function):
    """Exact causal attention over the CP ring; saves only local tensors for the backward."""

    @staticmethod
    def forward(ctx, q, k, v, scale: float, group: ProcessGroup | None):
        out, lse = _forward(q, k, v, scale, group)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.group = scale, group
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        group, scale = ctx.group, ctx.scale
        size, rank = group_size(group), group_rank(group)
        dout = grad_out.to(compute_dtype(q.dtype))
        delta = (dout * out).sum(dim=-1)
        pending_kv = start_ring_exchange([k, v], group, _KV_TAG) if size > 1 else None
        dq, dk, dv = _backward_step("diagonal", q, [k, v], dout, lse, delta, scale)
        for step in range(1, size):
            pending_dkv = start_ring_exchange([dk, dv], group, _DKV_TAG)
            kv = pending_kv.wait()
            if step < size - 1:
                pending_kv = start_ring_exchange(kv, group, _KV_TAG)
            kind = _step_kind(rank, (rank - step) % size)
            step_dq, step_dk, step_dv = _backward_step(kind, q, kv, dout, lse, delta, scale)
            dk_in, dv_in = pending_dkv.wait()  # this block's gradient from the ranks before us
            dq, dk, dv = dq + step_dq, dk_in + step_dk, dv_in + step_dv
        if size > 1:  # the last holder of each block sends its gradient home
            dk, dv = start_ring_exchange([dk, dv], group, _DKV_TAG).wait()
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None


def ring_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, group: ProcessGroup | None
) -> torch.Tensor:
    """Causal attention of load-balanced local ``q``/``k``/``v`` [b, h, 2c, d] over ``group``."""
    return RingAttention.apply(q, k, v, scale, group)
