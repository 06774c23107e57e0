"""Size and rank of a group that may be ``None``, meaning "this rank alone", and byte reports.

``ParallelState`` hands out ``None`` for every group when torch.distributed is not initialised
(a one-process run), so the collectives ask these helpers instead of torch.distributed directly
and work unchanged in both cases.
"""

from __future__ import annotations

import torch.distributed as dist

from gpt_parallel.comm import volume

ProcessGroup = dist.ProcessGroup


def is_active(group: ProcessGroup | None) -> bool:
    """Whether ``group`` is a real group of an initialised torch.distributed."""
    return group is not None and dist.is_available() and dist.is_initialized()


def group_size(group: ProcessGroup | None) -> int:
    """Number of ranks in ``group`` (1 for ``None``)."""
    return dist.get_world_size(group) if is_active(group) else 1


def group_rank(group: ProcessGroup | None) -> int:
    """This rank's index inside ``group`` (0 for ``None``)."""
    return dist.get_rank(group) if is_active(group) else 0


def report(op: str, numel: int, element_size: int, group: ProcessGroup | None) -> None:
    """Tell ``volume`` that this rank runs ``op`` on a full tensor of ``numel`` elements."""
    if volume.is_recording():
        volume.record(op, numel, element_size, group_size(group), group_rank(group))
