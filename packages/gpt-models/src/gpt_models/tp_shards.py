"""How each parameter is split over tensor-parallel ranks, and merging/splitting by that split.

The provider tags every parameter it makes, as the original's
``set_tensor_model_parallel_attributes``: ``tensor_model_parallel`` (split or replicated),
``partition_dim`` (-1 when replicated) and ``partition_stride``. A stride ``s`` means the full
tensor is cut into ``s * size`` blocks along the dim and rank ``r`` holds blocks ``r, r + size,
...`` (the original's ``_initialize_affine_weight_cpu``). Swiglu's ``linear_fc1`` has stride 2:
each rank holds ``[gate_r; up_r]`` of the full ``[gate; up]``, which is how the original's
tensor-parallel checkpoints lay it out. Initialisation, checkpoint merging and splitting all
read these tags (``tensor_parallel_layout``), never a table of parameter names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class TensorSplit:
    """Along which dim (-1: replicated) and with which stride a tensor is split over ranks."""

    dim: int = -1
    stride: int = 1

    @property
    def parallel(self) -> bool:
        return self.dim >= 0


REPLICATED = TensorSplit()
COLUMN = TensorSplit(0)
ROW = TensorSplit(1)


def tag(param: torch.Tensor | None, split: TensorSplit) -> None:
    """Record ``split`` on ``param`` under the original's attribute names."""
    if param is None:
        return
    param.tensor_model_parallel = split.parallel
    param.partition_dim = split.dim
    param.partition_stride = split.stride


PARTIAL_GRAD = "sums_grad_over_tensor_parallel"
"""Attribute of a replicated parameter whose gradient each tensor-parallel rank holds only in
part (norms and row-parallel biases on sequence shards, q/k norms on a rank's own heads): the
ranks' gradients are summed before the optimizer reads them (the original's all-reduce of
``sequence_parallel`` parameters in ``finalize_model_grads``)."""


def mark_tensor_parallel_partial_grad(param: torch.Tensor | None) -> None:
    """Say that ``param``'s gradient must be summed over the tensor-parallel group."""
    if param is not None:
        setattr(param, PARTIAL_GRAD, True)


def has_tensor_parallel_partial_grad(param: torch.Tensor) -> bool:
    return bool(getattr(param, PARTIAL_GRAD, False))


def split_of(param: torch.Tensor) -> TensorSplit:
    """The split recorded on ``param``; a parameter without tags is an error, not a guess."""
    if not hasattr(param, "tensor_model_parallel"):
        raise ValueError(f"parameter of shape {tuple(param.shape)} carries no tensor-parallel tags")
    if not param.tensor_model_parallel:
        return REPLICATED
    return TensorSplit(param.partition_dim, param.partition_stride)


def tensor_parallel_layout(model: nn.Module) -> dict[str, TensorSplit]:
    """State-dict key -> split, read from the tags of ``model``'s parameters (any device,
    meta included). Keys that are not parameters (``_extra_state``) are not listed."""
    return {
        key: split_of(value)
        for key, value in model.state_dict(keep_vars=True).items()
        if isinstance(value, nn.Parameter)
    }


def full_shape(shard_shape: Sequence[int], split: TensorSplit, size: int) -> tuple[int, ...]:
    """The global shape of a tensor whose shard on one rank has ``shard_shape``."""
    shape = list(shard_shape)
    if split.parallel:
        shape[split.dim] *= size
    return tuple(shape)


def shard(full: torch.Tensor, split: TensorSplit, size: int, rank: int) -> torch.Tensor:
    """Rank ``rank``'s slice of ``full`` (a view when it is one block)."""
    if not split.parallel or size == 1:
        return full
    blocks = split.stride * size
    if full.shape[split.dim] % blocks:
        raise ValueError(
            f"a tensor of shape {tuple(full.shape)} does not split into {blocks} blocks "
            f"along dim {split.dim}"
        )
    parts = torch.chunk(full, blocks, dim=split.dim)[rank::size]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=split.dim)


def merge(shards: Sequence[torch.Tensor], split: TensorSplit) -> torch.Tensor:
    """The inverse of ``shard``: join the ranks' slices (rank order) into the full tensor."""
    if not split.parallel or len(shards) == 1:
        return shards[0]
    pieces = [torch.chunk(s, split.stride, dim=split.dim) for s in shards]
    return torch.cat([p[j] for j in range(split.stride) for p in pieces], dim=split.dim)


def merge_tensor_parallel_shards(
    shards: Sequence[Mapping[str, Any]], layout: Mapping[str, TensorSplit]
) -> dict[str, Any]:
    """Join TP state-dict shards (rank order) into the single-device state dict; ``layout``
    (from ``tensor_parallel_layout``) says how each key is split, unlisted keys are replicated."""
    if not shards:
        raise ValueError("no tensor-parallel shards to merge")
    keys = list(shards[0])
    for rank, other in enumerate(shards[1:], start=1):
        if set(other) != set(keys):
            raise ValueError(f"TP shard {rank} has different keys than shard 0")
    merged: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in shards]
        if isinstance(values[0], torch.Tensor):
            merged[key] = merge(values, layout.get(key, REPLICATED))
        else:
            merged[key] = values[0]
    return merged


def split_tensor_parallel(
    state_dict: Mapping[str, Any], layout: Mapping[str, TensorSplit], size: int
) -> list[dict[str, Any]]:
    """The inverse of ``merge_tensor_parallel_shards``: one state dict per TP rank."""
    shards: list[dict[str, Any]] = [{} for _ in range(size)]
    for key, value in state_dict.items():
        split = layout.get(key, REPLICATED)
        for rank in range(size):
            if isinstance(value, torch.Tensor) and split.parallel:
                shards[rank][key] = shard(value, split, size, rank).clone()
            else:
                shards[rank][key] = value
    return shards
