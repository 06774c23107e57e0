"""Collectives over a group that may be ``None``, meaning "this rank alone".

``ParallelState`` hands out ``None`` for every group when torch.distributed is not initialised
(a one-process run), so library code calls these helpers instead of torch.distributed directly
and works unchanged in both cases.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

ProcessGroup = dist.ProcessGroup

_OPS = {
    "sum": dist.ReduceOp.SUM,
    "max": dist.ReduceOp.MAX,
    "min": dist.ReduceOp.MIN,
}


def _active(group: ProcessGroup | None) -> bool:
    return group is not None and dist.is_available() and dist.is_initialized()


def group_size(group: ProcessGroup | None) -> int:
    """Number of ranks in ``group`` (1 for ``None``)."""
    return dist.get_world_size(group) if _active(group) else 1


def group_rank(group: ProcessGroup | None) -> int:
    """This rank's index inside ``group`` (0 for ``None``)."""
    return dist.get_rank(group) if _active(group) else 0


def all_reduce_(tensor: torch.Tensor, group: ProcessGroup | None, op: str = "sum") -> torch.Tensor:
    """Reduce ``tensor`` in place over ``group`` with ``op`` (sum, max or min) and return it."""
    if op not in _OPS:
        raise ValueError(f"unknown reduce op {op!r}; expected one of {sorted(_OPS)}")
    if _active(group) and group_size(group) > 1:
        dist.all_reduce(tensor, op=_OPS[op], group=group)
    return tensor


def all_gather_object(obj: Any, group: ProcessGroup | None) -> list[Any]:
    """Every rank's ``obj`` in group-rank order (``[obj]`` for ``None``)."""
    if not _active(group) or group_size(group) == 1:
        return [obj]
    out: list[Any] = [None] * group_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out
