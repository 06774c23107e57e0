"""The collectives context-parallel attention uses, over an explicit group.

Every helper works on CPU with gloo and on CUDA with NCCL: gloo in the torch versions we use
supports ``batch_isend_irecv``, ``all_to_all_single`` and ``reduce_scatter_tensor`` (checked with
a two-rank run), so no gloo fallback is needed. A group of one rank never communicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from gpt_parallel.collectives import ProcessGroup, group_rank, group_size


@dataclass(frozen=True)
class PendingExchange:
    """Receives in flight from the previous ring rank; ``wait()`` returns them once arrived."""

    received: list[torch.Tensor]
    requests: list

    def wait(self) -> list[torch.Tensor]:
        for request in self.requests:
            request.wait()
        return self.received


def start_ring_exchange(
    tensors: list[torch.Tensor], group: ProcessGroup | None, tag: int = 0
) -> PendingExchange:
    """Send ``tensors`` to the next rank of the ring and receive the previous rank's, async.

    Returns at once so the caller can compute while the blocks travel (the original overlaps
    the same way). ``tag`` keeps two exchanges in flight at once apart on gloo.
    """
    size, rank = group_size(group), group_rank(group)
    if size == 1:
        return PendingExchange([t for t in tensors], [])
    send_to = dist.get_global_rank(group, (rank + 1) % size)
    recv_from = dist.get_global_rank(group, (rank - 1) % size)
    received = [torch.empty_like(t) for t in tensors]
    ops = []
    for sent, into in zip(tensors, received):
        ops.append(dist.P2POp(dist.isend, sent.contiguous(), send_to, group, tag))
        ops.append(dist.P2POp(dist.irecv, into, recv_from, group, tag))
    return PendingExchange(received, dist.batch_isend_irecv(ops))


def all_gather_shards(tensor: torch.Tensor, group: ProcessGroup | None) -> list[torch.Tensor]:
    """Every rank's ``tensor`` in group-rank order."""
    if group_size(group) == 1:
        return [tensor]
    shards = [torch.empty_like(tensor) for _ in range(group_size(group))]
    dist.all_gather(shards, tensor.contiguous(), group=group)
    return shards


def reduce_scatter_shards(shards: list[torch.Tensor], group: ProcessGroup | None) -> torch.Tensor:
    """Sum over ranks of ``shards[my_rank]``: rank ``j`` gets the sum of every rank's ``shards[j]``."""
    if group_size(group) == 1:
        return shards[0]
    out = torch.empty_like(shards[0])
    dist.reduce_scatter_tensor(out, torch.cat([s.contiguous() for s in shards]), group=group)
    return out


class _AllToAll(torch.autograd.Function):
    """``all_to_all_single`` over dim 0 (equal splits); its own adjoint, so backward repeats it."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
        ctx.group = group
        return _all_to_all(tensor, group)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _all_to_all(grad, ctx.group), None


def _all_to_all(tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    if group_size(group) == 1:
        return tensor
    tensor = tensor.contiguous()
    out = torch.empty_like(tensor)
    dist.all_to_all_single(out, tensor, group=group)
    return out


def all_to_all(tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """Differentiable all-to-all: piece ``j`` of dim 0 goes to rank ``j``; slot ``i`` of the
    result is what rank ``i`` sent to this rank."""
    return _AllToAll.apply(tensor, group)
