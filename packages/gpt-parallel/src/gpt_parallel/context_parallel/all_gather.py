"""``--cp-comm-type all_gather`` (``allgather``): gather the whole key/value sequence, then
attend with the local queries.

As in the original: the keys and values are all-gathered over the CP group and put back in
sequence order; local query chunk ``j`` (global chunk ``r`` or ``2n-1-r``) attends to the key
prefix that ends with its own chunk, causal on that last chunk. The backward gathers the keys
and values again (nothing sequence-long is kept between forward and backward) and
reduce-scatters the key/value gradients back to their owners. Simpler than the ring and one
collective per pass, at the price of every rank holding the full K/V during the computation.
"""

from __future__ import annotations

import torch

from gpt_parallel.collectives import ProcessGroup, group_rank, group_size
from gpt_parallel.context_parallel.block_math import block_backward, block_forward, compute_dtype
from gpt_parallel.context_parallel.chunking import (
    load_balanced_chunk_ids,
    merge_context_parallel_shards,
)
from gpt_parallel.context_parallel.comm import all_gather_shards, reduce_scatter_shards

_SEQ_DIM = -2


def _gather_sequence(tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    return merge_context_parallel_shards(all_gather_shards(tensor, group), _SEQ_DIM)


def _key_ends(rank: int, size: int, chunk: int) -> tuple[int, int]:
    """How many keys each of the two local query chunks may see (its own chunk included)."""
    return tuple((cid + 1) * chunk for cid in load_balanced_chunk_ids(rank, size))


def _scatter_back(full: torch.Tensor, size: int, group: ProcessGroup | None) -> torch.Tensor:
    """Sum over ranks of the full-sequence gradient, each rank keeping its two chunks."""
    chunks = full.chunk(2 * size, dim=_SEQ_DIM)
    shards = [torch.cat([chunks[r], chunks[2 * size - 1 - r]], dim=_SEQ_DIM) for r in range(size)]
    return reduce_scatter_shards(shards, group)


class AllGatherAttention(torch.autograd.Function):
    """Exact causal attention of the local queries against the all-gathered keys/values."""

    @staticmethod
    def forward(ctx, q, k, v, scale: float, group: ProcessGroup | None):
        size, rank = group_size(group), group_rank(group)
        chunk = q.shape[_SEQ_DIM] // 2
        k_all, v_all = _gather_sequence(k, group), _gather_sequence(v, group)
        outs, lses = [], []
        for q_part, end in zip(q.split(chunk, dim=_SEQ_DIM), _key_ends(rank, size, chunk)):
            out, lse = block_forward(q_part, k_all[..., :end, :], v_all[..., :end, :], scale, True)
            outs.append(out)
            lses.append(lse)
        out, lse = torch.cat(outs, dim=_SEQ_DIM), torch.cat(lses, dim=-1)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.group = scale, group
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        group, scale = ctx.group, ctx.scale
        size, rank = group_size(group), group_rank(group)
        chunk = q.shape[_SEQ_DIM] // 2
        dtype = compute_dtype(q.dtype)
        k_all, v_all = _gather_sequence(k, group), _gather_sequence(v, group)
        dout = grad_out.to(dtype)
        delta = (dout * out).sum(dim=-1)
        dk_all = torch.zeros_like(k_all, dtype=dtype)
        dv_all = torch.zeros_like(v_all, dtype=dtype)
        dqs = []
        for part, end in enumerate(_key_ends(rank, size, chunk)):
            rows = slice(part * chunk, (part + 1) * chunk)
            dq, dk, dv = block_backward(
                q[..., rows, :],
                k_all[..., :end, :],
                v_all[..., :end, :],
                dout[..., rows, :],
                lse[..., rows],
                delta[..., rows],
                scale,
                True,
            )
            dqs.append(dq)
            dk_all[..., :end, :] += dk
            dv_all[..., :end, :] += dv
        dk_local = _scatter_back(dk_all, size, group)
        dv_local = _scatter_back(dv_all, size, group)
        dq = torch.cat(dqs, dim=_SEQ_DIM)
        return dq.to(q.dtype), dk_local.to(k.dtype), dv_local.to(v.dtype), None, None


def all_gather_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, group: ProcessGroup | None
) -> torch.Tensor:
    """Causal attention of load-balanced local ``q``/``k``/``v`` [b, h, 2c, d] over ``group``."""
    return AllGatherAttention.apply(q, k, v, scale, group)
