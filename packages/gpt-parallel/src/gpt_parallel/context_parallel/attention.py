"""One entry point for causal attention over the context-parallel group, per ``--cp-comm-type``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gpt_parallel.collectives import ProcessGroup, group_size
from gpt_parallel.context_parallel.all_gather import all_gather_attention
from gpt_parallel.context_parallel.block_math import causal_attention, default_scale
from gpt_parallel.context_parallel.options import (
    check_context_parallel_attention,
)
from gpt_parallel.context_parallel.ring import ring_attention
from gpt_parallel.context_parallel.ulysses import a2a_attention, a2a_p2p_attention


@dataclass(frozen=True)
class ContextParallelGroups:
    """The groups an attention call talks over: the whole CP group, and for ``a2a+p2p`` its
    inner (all-to-all, adjacent CP ranks) and outer (ring) levels. ``None`` = this rank alone."""

    cp: ProcessGroup | None
    a2a: ProcessGroup | None = None
    p2p: ProcessGroup | None = None


def context_parallel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    groups: ContextParallelGroups,
    comm_type: str = "p2p",
    softmax_scale: float | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Exact causal self-attention of this rank's load-balanced chunks over the CP group.

    ``q`` [b, heads, s_local, d], ``k``/``v`` [b, kv_heads, s_local, d] (``s_local = 2 * chunk``,
    split by ``split_for_context_parallel``); returns [b, heads, s_local, d] in ``q``'s dtype,
    differentiable with respect to ``q``, ``k`` and ``v``.

    Attention dropout is refused: the original hands the probability to Transformer Engine,
    which draws the dropout mask per block and per rank, so no CP layout reproduces the
    one-rank result; our kernels are exact for dropout 0 only.
    """
    cp_size = group_size(groups.cp)
    sizes = None
    if groups.a2a is not None or groups.p2p is not None:
        sizes = (group_size(groups.a2a), group_size(groups.p2p))
    kind = check_context_parallel_attention(
        comm_type, cp_size, q.shape[1], k.shape[1], q.shape[-2] * cp_size, sizes
    )
    if dropout_p != 0.0:
        raise ValueError(
            f"--attention-dropout {dropout_p} is not supported with --context-parallel-size "
            f"{cp_size} > 1 here; use --attention-dropout 0"
        )
    scale = default_scale(q) if softmax_scale is None else softmax_scale
    if cp_size == 1:
        return causal_attention(q, k, v, scale)
    if kind == "p2p":
        return ring_attention(q, k, v, scale, groups.cp)
    if kind == "all_gather":
        return all_gather_attention(q, k, v, scale, groups.cp)
    if kind == "a2a":
        return a2a_attention(q, k, v, scale, groups.cp)
    return a2a_p2p_attention(q, k, v, scale, groups.a2a, groups.p2p)
