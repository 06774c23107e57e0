"""Autograd functions that move activations into and out of tensor-parallel regions.

Each is a pair of collectives, one in forward and its adjoint in backward, with the original's
semantics (Megatron's ``tensor_parallel/mappings.py``), but taking the process group as an
argument instead of reading a global:

========================================  ==========================  ==========================
function                                  forward                     backward
========================================  ==========================  ==========================
copy_to_tensor_parallel_region            identity                    all-reduce
reduce_from_tensor_parallel_region        all-reduce                  identity
scatter_to_tensor_parallel_region         slice of the last dim       all-gather last dim
gather_from_tensor_parallel_region        all-gather last dim         slice of the last dim
scatter_to_sequence_parallel_region       slice of dim 0              all-gather dim 0
gather_from_sequence_parallel_region      all-gather dim 0            reduce-scatter dim 0 (*)
reduce_scatter_to_sequence_parallel_...   reduce-scatter dim 0        all-gather dim 0
========================================  ==========================  ==========================

(*) or a slice of dim 0 with ``tensor_parallel_output_grad=False``, when the gathered tensor
feeds a computation that every rank repeats identically (its gradient is then already whole).

Sequence-parallel activations are sequence-first ``[s, b, h]``, so their split is along dim 0.
With a group of ``None`` or of one rank each function returns its input unchanged and adds no
autograd node.
"""

from __future__ import annotations

from typing import Any

import torch

from gpt_parallel.collectives import ProcessGroup, group_size
from gpt_parallel.tensor_parallel import comm

_LAST = -1
_SEQ = 0


class _CopyToRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return comm.all_reduce(grad, ctx.group), None


class _ReduceFromRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
        return comm.all_reduce(x, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _ScatterToRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: ProcessGroup, dim: int) -> torch.Tensor:
        ctx.group, ctx.dim = group, dim
        return comm.split(x, dim, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return comm.all_gather(grad, ctx.dim, ctx.group), None, None


class _GatherFromRegion(torch.autograd.Function):
    """All-gather; backward reduce-scatters (``reduce_grad``) or slices the gradient."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, group: ProcessGroup, dim: int, reduce_grad: bool
    ) -> torch.Tensor:
        ctx.group, ctx.dim, ctx.reduce_grad = group, dim, reduce_grad
        return comm.all_gather(x, dim, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        if ctx.reduce_grad:
            return comm.reduce_scatter(grad, ctx.dim, ctx.group), None, None, None
        return comm.split(grad, ctx.dim, ctx.group), None, None, None


class _ReduceScatterToRegion(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: ProcessGroup, dim: int) -> torch.Tensor:
        ctx.group, ctx.dim = group, dim
        return comm.reduce_scatter(x, dim, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return comm.all_gather(grad, ctx.dim, ctx.group), None, None


def _alone(group: ProcessGroup | None) -> bool:
    return group_size(group) == 1


def copy_to_tensor_parallel_region(x: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """Enter a region whose ranks each use all of ``x`` (a column-parallel linear's input)."""
    return x if _alone(group) else _CopyToRegion.apply(x, group)


def reduce_from_tensor_parallel_region(x: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """Leave a region by summing the ranks' partial results (a row-parallel linear's output)."""
    return x if _alone(group) else _ReduceFromRegion.apply(x, group)


def scatter_to_tensor_parallel_region(x: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """Keep this rank's slice of the last dim (a row-parallel linear's unsplit input)."""
    return x if _alone(group) else _ScatterToRegion.apply(x, group, _LAST)


def gather_from_tensor_parallel_region(x: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """Concatenate the ranks' slices of the last dim (a column-parallel linear's full output)."""
    return x if _alone(group) else _GatherFromRegion.apply(x, group, _LAST, False)


def scatter_to_sequence_parallel_region(
    x: torch.Tensor, group: ProcessGroup | None
) -> torch.Tensor:
    """Keep this rank's slice of the sequence (dim 0), e.g. the embeddings' output."""
    return x if _alone(group) else _ScatterToRegion.apply(x, group, _SEQ)


def gather_from_sequence_parallel_region(
    x: torch.Tensor,
    group: ProcessGroup | None,
    tensor_parallel_output_grad: bool = True,
) -> torch.Tensor:
    """The whole sequence from every rank's slice (before a column-parallel linear).

    ``tensor_parallel_output_grad`` says the gathered tensor feeds tensor-parallel work, so
    each rank holds only part of its gradient: backward then reduce-scatters. With ``False``
    every rank holds the whole gradient and backward just keeps this rank's slice.
    """
    if _alone(group):
        return x
    return _GatherFromRegion.apply(x, group, _SEQ, tensor_parallel_output_grad)


def reduce_scatter_to_sequence_parallel_region(
    x: torch.Tensor, group: ProcessGroup | None
) -> torch.Tensor:
    """Sum the ranks' partial results and keep this rank's slice of the sequence (dim 0)."""
    return x if _alone(group) else _ReduceScatterToRegion.apply(x, group, _SEQ)
