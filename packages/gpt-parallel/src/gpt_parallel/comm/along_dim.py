"""Collectives that split or join tensors along a dimension, returning new tensors.

The inputs are never modified: the callers are autograd functions whose inputs and incoming
gradients may be read elsewhere. A group of ``None`` or of one rank makes each the identity (no
copy, no communication).

Reduce-scatter uses ``torch.distributed.reduce_scatter_tensor`` and the all-to-all
``all_to_all_single``, which gloo supports as of torch 2.15 (checked on 2 ranks), so CPU tests
run the same code path as NCCL.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from gpt_parallel.comm.groups import ProcessGroup, group_rank, group_size, report


def check_divisible(tensor: torch.Tensor, dim: int, parts: int, over: str = "ranks") -> int:
    """The size of one of ``parts`` equal pieces of ``tensor`` along ``dim``; ``over`` names
    the ranks in the error (e.g. "tensor-parallel ranks")."""
    size = tensor.shape[dim]
    if size % parts:
        raise ValueError(
            f"dimension {dim} of a tensor of shape {tuple(tensor.shape)} has size {size}, "
            f"which does not split over {parts} {over}"
        )
    return size // parts


def split(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """This rank's equal slice of ``tensor`` along ``dim`` (contiguous; no communication)."""
    n = group_size(group)
    if n == 1:
        return tensor
    width = check_divisible(tensor, dim, n)
    return tensor.narrow(dim, group_rank(group) * width, width).contiguous()


def all_gather(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along ``dim``, in group-rank order."""
    n = group_size(group)
    if n == 1:
        return tensor
    local = tensor.contiguous()
    # Rank blocks one after another along dim 0 (the layout every backend accepts): already
    # the answer for dim 0, a view of the blocks to concatenate otherwise.
    out = local.new_empty((n * local.shape[0], *local.shape[1:]))
    report("all_gather", out.numel(), local.element_size(), group)
    dist.all_gather_into_tensor(out, local, group=group)
    if dim == 0:
        return out
    return torch.cat(out.view(n, *local.shape).unbind(0), dim=dim)


def reduce_scatter(tensor: torch.Tensor, dim: int, group: ProcessGroup | None) -> torch.Tensor:
    """This rank's slice along ``dim`` of the sum of ``tensor`` over the group."""
    n = group_size(group)
    if n == 1:
        return tensor
    width = check_divisible(tensor, dim, n)
    full = tensor.movedim(dim, 0).contiguous()
    out = full.new_empty((width, *full.shape[1:]))
    report("reduce_scatter", full.numel(), full.element_size(), group)
    dist.reduce_scatter_tensor(out, full, group=group)
    return out if dim == 0 else out.movedim(0, dim).contiguous()


def all_gather_list(tensor: torch.Tensor, group: ProcessGroup | None) -> list[torch.Tensor]:
    """Every rank's ``tensor`` as a list in group-rank order (same shape on every rank)."""
    n = group_size(group)
    if n == 1:
        return [tensor]
    shards = [torch.empty_like(tensor) for _ in range(n)]
    report("all_gather", n * tensor.numel(), tensor.element_size(), group)
    dist.all_gather(shards, tensor.contiguous(), group=group)
    return shards


def reduce_scatter_list(shards: list[torch.Tensor], group: ProcessGroup | None) -> torch.Tensor:
    """Sum over ranks of ``shards[my_rank]``: rank ``j`` gets the sum of every rank's ``shards[j]``."""
    if group_size(group) == 1:
        return shards[0]
    full = torch.cat([s.contiguous() for s in shards])
    out = torch.empty_like(shards[0])
    report("reduce_scatter", full.numel(), full.element_size(), group)
    dist.reduce_scatter_tensor(out, full, group=group)
    return out


def all_to_all(tensor: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """Piece ``j`` of dim 0 (equal pieces) goes to rank ``j``; slot ``i`` of the result is what
    rank ``i`` sent to this rank. Not differentiable (context parallelism wraps it)."""
    if group_size(group) == 1:
        return tensor
    tensor = tensor.contiguous()
    out = torch.empty_like(tensor)
    report("all_to_all", tensor.numel(), tensor.element_size(), group)
    dist.all_to_all_single(out, tensor, group=group)
    return out
