"""In-place collectives on one flat buffer, for data parallelism, with async handles.

Each returns an async handle (with ``async_op``) or None. The reduce-scatter and all-gather work
in place on one flat buffer (this rank's shard is a view of it), as the original does with NCCL;
the buffer's padding travels with it and is counted as sent. ``reduce_scatter_flat`` falls back
to an all-reduce of the whole buffer (the shard is then already in place) on a backend without
``reduce_scatter_tensor``: gloo lacks it in some torch versions (torch 2.15's gloo has it, so
the native call is what runs here; the fallback is tested directly, and counted as the
all-reduce it is).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from gpt_parallel.comm.groups import ProcessGroup, group_rank, group_size, report

Handle = dist.Work | None


def _single(group: ProcessGroup | None) -> bool:
    return group_size(group) == 1


def supports_avg(group: ProcessGroup | None) -> bool:
    """Whether the backend averages natively; elsewhere "average" is a sum then a 1/dp scale.

    Only NCCL documents ``ReduceOp.AVG``; gloo's support varies with the torch version.
    """
    return not _single(group) and dist.get_backend(group) == "nccl"


def shard_of(flat: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """This rank's contiguous 1/dp of ``flat`` (whose length the layout made a multiple of dp)."""
    size = group_size(group)
    if flat.numel() % size:
        raise ValueError(f"a buffer of {flat.numel()} elements does not split into {size} shards")
    shard = flat.numel() // size
    rank = group_rank(group)
    return flat[rank * shard : (rank + 1) * shard]


def _reduce_op(average: bool, op: dist.ReduceOp | None) -> dist.ReduceOp:
    if op is not None:
        return op
    return dist.ReduceOp.AVG if average else dist.ReduceOp.SUM


def all_reduce_flat(
    flat: torch.Tensor,
    group: ProcessGroup | None,
    average: bool,
    async_op: bool,
    op: dist.ReduceOp | None = None,
) -> Handle:
    """Sum (or, with ``average`` on a backend that has it, average) ``flat`` in place.

    ``op`` overrides that choice (a pre-multiplied sum, say); nothing runs on one rank.
    """
    if _single(group):
        return None
    op = _reduce_op(average, op)
    report("all_reduce", flat.numel(), flat.element_size(), group)
    return dist.all_reduce(flat, op=op, group=group, async_op=async_op)


def reduce_scatter_flat(
    flat: torch.Tensor,
    group: ProcessGroup | None,
    average: bool,
    async_op: bool,
    op: dist.ReduceOp | None = None,
) -> Handle:
    """Reduce ``flat`` over ``group`` into this rank's shard of it (the rest is left stale)."""
    if _single(group):
        return None
    if not hasattr(dist, "reduce_scatter_tensor"):
        return reduce_scatter_via_all_reduce(flat, group, average, async_op, op)
    op = _reduce_op(average, op)
    report("reduce_scatter", flat.numel(), flat.element_size(), group)
    return dist.reduce_scatter_tensor(
        shard_of(flat, group), flat, op=op, group=group, async_op=async_op
    )


def reduce_scatter_via_all_reduce(
    flat: torch.Tensor,
    group: ProcessGroup | None,
    average: bool,
    async_op: bool,
    op: dist.ReduceOp | None = None,
) -> Handle:
    """The fallback: all-reduce everything, which leaves the reduced shard where it belongs."""
    return all_reduce_flat(flat, group, average, async_op, op)


def all_gather_flat(flat: torch.Tensor, group: ProcessGroup | None, async_op: bool) -> Handle:
    """Fill ``flat`` with every rank's shard of it, in rank order."""
    if _single(group):
        return None
    report("all_gather", flat.numel(), flat.element_size(), group)
    return dist.all_gather_into_tensor(flat, shard_of(flat, group), group=group, async_op=async_op)
