"""The collectives of tensor and sequence parallelism, along a tensor dimension.

Every function takes its process group explicitly; a group of ``None`` or of one rank makes
it the identity (no copy, no communication). Each collective reports itself to
``comm_bytes`` so its traffic can be counted. The inputs are never modified: the callers are
autograd functions whose inputs and incoming gradients may be read elsewhere.

Reduce-scatter uses ``torch.distributed.reduce_scatter_tensor``, which gloo supports as of
torch 2.15 (checked on 2 ranks), so CPU tests run the same code path as NCCL.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from gpt_parallel.collectives import ProcessGroup, all_reduce_, group_rank, group_size
from gpt_parallel.tensor_parallel import comm_bytes


def _divisible(tensor: torch.Tensor, dim: int, parts: int) -> int:
    """The size of one of ``parts`` equal pieces of ``tensor`` along ``dim``."""
    size = tensor.shape[dim]
    if size % parts:
        raise ValueError(
            f"dimension {dim} of a tensor of shape {tuple(tensor.shape)} has size {size}, "
            f"which does not split over {parts} tensor-parallel ranks"
        )
    return size // parts


def _report(op: str, numel: int, tensor: torch.Tensor, group: ProcessGroup | None) -> None:
    comm_bytes.record(op, numel, tensor.element_size(), group_size(group), group_rank(group))


def split(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """This rank's equal slice of ``tensor`` along ``dim`` (contiguous; no communication)."""
    n = group_size(group)
    if n == 1:
        return tensor
    width = _divisible(tensor, dim, n)
    return tensor.narrow(dim, group_rank(group) * width, width).contiguous()


def all_reduce(tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """The sum of ``tensor`` over the group, in a new tensor."""
    if group_size(group) == 1:
        return tensor
    out = tensor.clone(memory_format=torch.contiguous_format)
    return all_reduce_in_place(out, group)


def all_reduce_in_place(
    tensor: torch.Tensor, group: ProcessGroup | None, op: str = "sum"
) -> torch.Tensor:
    """Reduce a contiguous ``tensor`` that the caller owns, in place (op sum, max or min)."""
    if group_size(group) == 1:
        return tensor
    _report("all_reduce", tensor.numel(), tensor, group)
    return all_reduce_(tensor, group, op)


def all_gather(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along ``dim``, in group-rank order."""
    n = group_size(group)
    if n == 1:
        return tensor
    local = tensor.contiguous()
    # Rank blocks one after another along dim 0 (the layout every backend accepts): already
    # the answer for dim 0, a view of the blocks to concatenate otherwise.
    out = local.new_empty((n * local.shape[0], *local.shape[1:]))
    _report("all_gather", out.numel(), local, group)
    dist.all_gather_into_tensor(out, local, group=group)
    if dim == 0:
        return out
    return torch.cat(out.view(n, *local.shape).unbind(0), dim=dim)


def reduce_scatter(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """This rank's slice along ``dim`` of the sum of ``tensor`` over the group."""
    n = group_size(group)
    if n == 1:
        return tensor
    width = _divisible(tensor, dim, n)
    full = tensor.movedim(dim, 0).contiguous()
    out = full.new_empty((width, *full.shape[1:]))
    _report("reduce_scatter", full.numel(), full, group)
    dist.reduce_scatter_tensor(out, full, group=group)
    return out if dim == 0 else out.movedim(0, dim).contiguous()
