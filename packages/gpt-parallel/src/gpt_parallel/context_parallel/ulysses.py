"""``--cp-comm-type a2a`` (DeepSpeed-Ulysses style) and ``a2a+p2p`` (hierarchical).

``a2a``: an all-to-all turns "every rank holds all heads of its sequence chunks" into "every
rank holds the whole sequence for ``heads / n`` heads", ordinary causal attention runs per head
group, and a second all-to-all turns it back. After the first all-to-all the sequence arrives in
rank order of the load-balanced chunks, so it is put in sequence order before attention and
back after (as the original does). Needs query and key/value heads divisible by the group size.

``a2a+p2p``: the all-to-all runs inside the inner (a2a) group of ``A`` adjacent CP ranks; the
``2A`` chunks it gathers are exactly the two load-balanced "super-chunks" of the outer (p2p)
ring (firsts in order, seconds in reverse), so the ring attention runs unchanged across the
outer group on chunks ``A`` times longer. Only the all-to-all is differentiated by autograd
(it is its own adjoint); the ring keeps its own backward.
"""

from __future__ import annotations

import torch

from gpt_parallel.collectives import ProcessGroup, group_size
from gpt_parallel.context_parallel.block_math import block_forward
from gpt_parallel.context_parallel.comm import all_to_all
from gpt_parallel.context_parallel.ring import ring_attention


def seq_to_heads(x: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """[b, h, s_local, d] sharded by sequence -> [b, h/n, n*s_local, d] sharded by heads; the
    sequence comes in rank order (rank 0's local part first)."""
    n = group_size(group)
    b, h, s, d = x.shape
    pieces = x.reshape(b, n, h // n, s, d).transpose(0, 1)  # piece j goes to rank j
    gathered = all_to_all(pieces, group)  # slot i: rank i's sequence part of my heads
    return gathered.permute(1, 2, 0, 3, 4).reshape(b, h // n, n * s, d)


def heads_to_seq(x: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """The inverse of ``seq_to_heads``."""
    n = group_size(group)
    b, hn, ns, d = x.shape
    pieces = x.reshape(b, hn, n, ns // n, d).permute(2, 0, 1, 3, 4)  # sequence part i -> rank i
    gathered = all_to_all(pieces, group)  # slot j: my sequence part of rank j's heads
    return gathered.transpose(0, 1).reshape(b, n * hn, ns // n, d)


def _rank_order_to_sequence_order(n: int) -> list[int]:
    """Chunk positions, in rank order (r's first, r's second, ...), of sequence chunks 0..2n-1."""
    order = []
    for chunk in range(2 * n):
        rank = chunk if chunk < n else 2 * n - 1 - chunk
        order.append(2 * rank + (0 if chunk < n else 1))
    return order


def _rank_order_to_super_chunks(n: int) -> list[int]:
    """Chunk positions, in rank order, of the two super-chunks: every rank's first chunk in rank
    order, then every rank's second chunk in reverse rank order."""
    return [2 * r for r in range(n)] + [2 * r + 1 for r in reversed(range(n))]


def _permute_chunks(x: torch.Tensor, order: list[int]) -> torch.Tensor:
    chunks = x.chunk(len(order), dim=-2)
    return torch.cat([chunks[i] for i in order], dim=-2)


def _inverse(order: list[int]) -> list[int]:
    inverse = [0] * len(order)
    for position, source in enumerate(order):
        inverse[source] = position
    return inverse


def a2a_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, group: ProcessGroup | None
) -> torch.Tensor:
    """Causal attention of load-balanced local ``q``/``k``/``v`` [b, h, 2c, d] over ``group``."""
    order = _rank_order_to_sequence_order(group_size(group))
    q_h, k_h, v_h = (_permute_chunks(seq_to_heads(t, group), order) for t in (q, k, v))
    out, _ = block_forward(q_h, k_h, v_h, scale, causal=True)
    out = _permute_chunks(out.to(q.dtype), _inverse(order))
    return heads_to_seq(out, group)


def a2a_p2p_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    a2a_group: ProcessGroup | None,
    p2p_group: ProcessGroup | None,
) -> torch.Tensor:
    """Hierarchical CP: all-to-all inside ``a2a_group``, ring attention across ``p2p_group``.

    Requires CP rank ``= p2p_rank * a2a_size + a2a_rank`` (see ``hierarchical_cp_rank_lists``).
    """
    order = _rank_order_to_super_chunks(group_size(a2a_group))
    q_h, k_h, v_h = (_permute_chunks(seq_to_heads(t, a2a_group), order) for t in (q, k, v))
    out = ring_attention(q_h, k_h, v_h, scale, p2p_group)
    return heads_to_seq(_permute_chunks(out, _inverse(order)), a2a_group)
