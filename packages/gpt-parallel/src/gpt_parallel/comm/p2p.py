"""Point-to-point: the ring exchange of context parallelism.

gloo in the torch versions we use supports ``batch_isend_irecv`` (checked with a two-rank run),
so no gloo fallback is needed. A group of one rank never communicates. Each tensor sent is
counted as a ``send`` of its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from gpt_parallel.comm.groups import ProcessGroup, group_rank, group_size, report


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
        report("send", sent.numel(), sent.element_size(), group)
        ops.append(dist.P2POp(dist.isend, sent.contiguous(), send_to, group, tag))
        ops.append(dist.P2POp(dist.irecv, into, recv_from, group, tag))
    return PendingExchange(received, dist.batch_isend_irecv(ops))
