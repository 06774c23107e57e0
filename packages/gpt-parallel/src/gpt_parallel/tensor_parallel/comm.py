"""The collectives of tensor and sequence parallelism, along a tensor dimension.

The collectives themselves are ``gpt_parallel.comm``'s (each reports its bytes to
``comm.volume``); what is specific here is the error a split that does not divide names:
"tensor-parallel ranks", the flag-level notion a user can change.
"""

from __future__ import annotations

import torch

from gpt_parallel.comm import along_dim
from gpt_parallel.comm.along_dim import all_gather, check_divisible
from gpt_parallel.comm.basic import all_reduce
from gpt_parallel.comm.basic import all_reduce_ as all_reduce_in_place
from gpt_parallel.comm.groups import ProcessGroup, group_size

__all__ = ["all_gather", "all_reduce", "all_reduce_in_place", "reduce_scatter", "split"]

_OVER = "tensor-parallel ranks"


def split(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """This rank's equal slice of ``tensor`` along ``dim`` (contiguous; no communication)."""
    check_divisible(tensor, dim, group_size(group), _OVER)
    return along_dim.split(tensor, dim, group)


def reduce_scatter(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """This rank's slice along ``dim`` of the sum of ``tensor`` over the group."""
    check_divisible(tensor, dim, group_size(group), _OVER)
    return along_dim.reduce_scatter(tensor, dim, group)
