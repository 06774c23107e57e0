"""ZeRO-2 (``--data-parallel-sharding-strategy optim_grads``) on top of the distributed optimizer.

The distributed optimizer (ZeRO-1) already reduce-scatters the gradient buffer and updates only
this rank's shard; what ZeRO-2 adds is that the rest of the gradient buffer is not kept. Here,
after each step, this rank's reduced shard of every bucket is copied into a buffer of 1/dp the
size (the main params' ``.grad`` then point into it, so they stay readable after the step, as
with ZeRO-1), and the full buffer's storage is freed; ``zero_grad_buffer`` re-allocates it at the
start of the next iteration, before the first backward writes into it. The full buffer therefore
lives from the start of an iteration through its step, and only the 1/dp shard between steps
(evaluation, checkpointing, the next iteration's data loading). Freeing each bucket during
backward as soon as it is reduced (the peak-memory side of ZeRO-2) would need every micro-batch
to be reduced, not accumulated under ``no_sync``: not done.
"""

from __future__ import annotations

import torch

from gpt_parallel.collectives import group_rank, group_size
from gpt_parallel.ddp.data_parallel import DistributedDataParallel
from gpt_parallel.ddp.distributed_optimizer import DistributedOptimizer
from gpt_parallel.ddp.shards import ShardPiece


class GradShards:
    """This rank's shard of each gradient buffer (its buckets' shards, concatenated)."""

    def __init__(self, ddp: DistributedDataParallel) -> None:
        self.ddp = ddp
        dp_size, rank = group_size(ddp.dp_group), group_rank(ddp.dp_group)
        # Per buffer, per bucket: (start in the full buffer, start in the shard, length).
        self.ranges: list[list[tuple[int, int, int]]] = []
        self.shards: list[torch.Tensor] = []
        for buf in ddp.grad_buffers:
            ranges, offset = [], 0
            for bucket in buf.buckets:
                length = (bucket.end - bucket.start) // dp_size
                ranges.append((bucket.start + rank * length, offset, length))
                offset += length
            self.ranges.append(ranges)
            self.shards.append(
                torch.zeros(offset, dtype=buf.grad_dtype, device=buf.grad_data.device)
            )
        self.released = False

    def of(self, piece: ShardPiece) -> torch.Tensor:
        """A piece's gradient inside the kept shard."""
        buf = self.ddp.grad_buffers[piece.buffer]
        full_start, shard_start, _ = self.ranges[piece.buffer][buf.param_index[piece.param].bucket]
        start = shard_start + piece.buffer_start - full_start
        return self.shards[piece.buffer][start : start + piece.numel]

    @torch.no_grad()
    def keep_and_release(self) -> None:
        """Copy this rank's reduced shards out of the full buffers, then free those."""
        for buf, ranges, shard in zip(self.ddp.grad_buffers, self.ranges, self.shards, strict=True):
            for full_start, shard_start, length in ranges:
                shard[shard_start : shard_start + length].copy_(
                    buf.grad_data[full_start : full_start + length]
                )
            buf.grad_data.untyped_storage().resize_(0)
        self.released = True

    def reallocate(self) -> None:
        """Give the full buffers their storage back (zeroed by the DDP's ``zero_grad_buffer``)."""
        if not self.released:
            return
        for buf in self.ddp.grad_buffers:
            data = buf.grad_data
            data.untyped_storage().resize_(data.numel() * data.element_size())
        self.released = False

    def numel(self) -> int:
        return sum(shard.numel() for shard in self.shards)


class Zero2Optimizer(DistributedOptimizer):
    """The distributed optimizer that keeps only this rank's gradient shard after each step."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.grad_shards = GradShards(self.ddp)

    @torch.no_grad()
    def step(self) -> tuple[bool, float | None, int | None]:
        result = super().step()
        self.grad_shards.keep_and_release()
        for main, piece in zip(self.main_params, self.pieces, strict=True):
            if main.grad is not None:
                main.grad = self.grad_shards.of(piece).float()
        return result
