"""The collectives context-parallel attention uses, over an explicit group.

The collectives are ``gpt_parallel.comm``'s (each reports its bytes to ``comm.volume``); what is
specific here is the differentiable all-to-all of Ulysses attention, and the names the context
parallel modules import. A group of one rank never communicates.
"""

from __future__ import annotations

from typing import Any

import torch

from gpt_parallel.comm import along_dim
from gpt_parallel.comm.along_dim import all_gather_list as all_gather_shards
from gpt_parallel.comm.along_dim import reduce_scatter_list as reduce_scatter_shards
from gpt_parallel.comm.groups import ProcessGroup
from gpt_parallel.comm.p2p import PendingExchange, start_ring_exchange

__all__ = [
    "PendingExchange",
    "all_gather_shards",
    "all_to_all",
    "reduce_scatter_shards",
    "start_ring_exchange",
]


class _AllToAll(torch.autograd.Function):
    """``all_to_all_single`` over dim 0 (equal splits); its own adjoint, so backward repeats it."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
        ctx.group = group
        return along_dim.all_to_all(tensor, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return along_dim.all_to_all(grad, ctx.group), None


def all_to_all(tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """Differentiable all-to-all: piece ``j`` of dim 0 goes to rank ``j``; slot ``i`` of the
    result is what rank ``i`` sent to this rank."""
    return _AllToAll.apply(tensor, group)
