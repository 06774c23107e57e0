"""Whole-tensor collectives: all-reduce (in place or into a copy) and all-gather of objects.

A group of ``None`` or of one rank makes each the identity (no copy, no communication).
"""

from __future__ import annotations

import pickle
from typing import Any

import torch
import torch.distributed as dist

from gpt_parallel.comm.groups import ProcessGroup, group_size, report

_OPS = {
    "sum": dist.ReduceOp.SUM,
    "max": dist.ReduceOp.MAX,
    "min": dist.ReduceOp.MIN,
}


def all_reduce_(tensor: torch.Tensor, group: ProcessGroup | None, op: str = "sum") -> torch.Tensor:
    """Reduce ``tensor`` in place over ``group`` with ``op`` (sum, max or min) and return it."""
    if op not in _OPS:
        raise ValueError(f"unknown reduce op {op!r}; expected one of {sorted(_OPS)}")
    if group_size(group) > 1:
        report("all_reduce", tensor.numel(), tensor.element_size(), group)
        dist.all_reduce(tensor, op=_OPS[op], group=group)
    return tensor


def all_reduce(tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """The sum of ``tensor`` over the group, in a new tensor (the input is never modified)."""
    if group_size(group) == 1:
        return tensor
    return all_reduce_(tensor.clone(memory_format=torch.contiguous_format), group)


def all_gather_object(obj: Any, group: ProcessGroup | None) -> list[Any]:
    """Every rank's ``obj`` in group-rank order (``[obj]`` for ``None``).

    Counted as torch sends it: an all-gather of one int64 size per rank, then one of every
    rank's pickle padded to the largest. The sizes are measured by pickling the gathered
    objects again, so the count is exact when an object pickles to the same bytes twice.
    """
    size = group_size(group)
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj, group=group)
    largest = max(len(pickle.dumps(item)) for item in out)
    report("all_gather", size, 8, group)
    report("all_gather", size * largest, 1, group)
    return out
