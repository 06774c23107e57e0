"""Which part of each parameter this data-parallel rank owns under the distributed optimizer.

Each bucket of ``[start, end)`` (a multiple of dp elements, see ``layout``) splits into dp equal
shards, dp being the size of ``ddp.shard_group`` (the data-parallel group, or one
distributed-optimizer instance's part of it); rank r owns ``[start + r*s, start + (r+1)*s)``.
A parameter lies inside one bucket and is contiguous, so its intersection with a rank's shard
is one interval (possibly empty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gpt_parallel.collectives import group_rank, group_size
from gpt_parallel.ddp.data_parallel import DistributedDataParallel


@dataclass(frozen=True, eq=False)
class ShardPiece:
    """Elements ``[param_start, param_end)`` of ``param.view(-1)``, owned by this rank.

    ``buffer`` indexes ``ddp.grad_buffers``; ``buffer_start`` is where the piece sits in it.
    """

    param: torch.nn.Parameter
    buffer: int
    buffer_start: int
    param_start: int
    param_end: int

    @property
    def numel(self) -> int:
        return self.param_end - self.param_start

    def of(self, flat_param_tensor: torch.Tensor) -> torch.Tensor:
        """The piece of a tensor shaped like the parameter (its data or its ``main_grad``)."""
        return flat_param_tensor.reshape(-1)[self.param_start : self.param_end]


def shard_pieces(ddp: DistributedDataParallel) -> dict[torch.nn.Parameter, ShardPiece]:
    """This rank's piece of every parameter it owns a part of, in buffer order."""
    # With several distributed-optimizer instances the shards are over the instance's ranks;
    # expert buffers are sharded over the expert-data-parallel ranks (each buffer's group).
    pieces: dict[torch.nn.Parameter, ShardPiece] = {}
    for index, buf in enumerate(ddp.grad_buffers):
        dp_size, rank = group_size(buf.dp_group), group_rank(buf.dp_group)
        for bucket in buf.buckets:
            shard = (bucket.end - bucket.start) // dp_size
            lo = bucket.start + rank * shard
            hi = lo + shard
            for param in bucket.params:
                slot = buf.param_index[param]
                start, end = max(slot.start, lo), min(slot.end, hi)
                if start < end:
                    pieces[param] = ShardPiece(
                        param, index, start, start - slot.start, end - slot.start
                    )
    return pieces
