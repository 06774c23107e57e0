"""Describe this rank's piece of a global state dict, so any layout can save and any can load.

The original's ShardedTensor idea (``dist_checkpointing/mapping.py``, §4.4 of the reference): a
rank declares each tensor it holds by its global key, the local block, the global shape and
where the block sits in the global tensor; only main replicas write. Loading asks for a block
by the same description and gets the overlap of the saved chunks, whatever layout saved them.
A ``ShardedObject`` is the same for a picklable per-rank value (RNG state): its "shape" counts
shards, its offset names this rank's shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


class ShardedCheckpointError(ValueError):
    """A sharded checkpoint cannot be written or read; the message names the file or key."""


@dataclass(frozen=True)
class ShardedTensor:
    """``data`` is the block ``[global_offset, global_offset + data.shape)`` of tensor ``key``."""

    key: str
    data: torch.Tensor
    global_shape: tuple[int, ...]
    global_offset: tuple[int, ...]
    main_replica: bool = True
    """Whether this rank writes the block (exactly one holder of each block does)."""

    def __post_init__(self) -> None:
        shape = tuple(self.data.shape)
        if not (len(shape) == len(self.global_shape) == len(self.global_offset)):
            raise ShardedCheckpointError(
                f"{self.key}: local shape {shape}, global shape {self.global_shape} and offset "
                f"{self.global_offset} differ in rank"
            )
        for size, offset, total in zip(shape, self.global_offset, self.global_shape, strict=True):
            if offset < 0 or offset + size > total:
                raise ShardedCheckpointError(
                    f"{self.key}: block {shape} at {self.global_offset} lies outside "
                    f"{self.global_shape}"
                )

    @classmethod
    def whole(cls, key: str, data: torch.Tensor, main_replica: bool = True) -> ShardedTensor:
        """A tensor every holder has in full (a replicated weight, a scalar)."""
        shape = tuple(data.shape)
        return cls(key, data, shape, (0,) * len(shape), main_replica)


@dataclass(frozen=True)
class ShardedObject:
    """Shard ``global_offset`` of a grid ``global_shape`` of picklable values under ``key``."""

    key: str
    data: Any
    global_shape: tuple[int, ...]
    global_offset: tuple[int, ...]
    main_replica: bool = True

    @property
    def unique_key(self) -> str:
        """The name DCP stores it under, as the original names it."""
        offsets = ".".join(str(o) for o in self.global_offset)
        shape = ".".join(str(s) for s in self.global_shape)
        return f"{self.key}/shard_{offsets}_{shape}"


def split_along(
    key: str,
    local: torch.Tensor,
    *,
    dim: int,
    rank: int,
    size: int,
    stride: int = 1,
    main_replica: bool = True,
) -> list[ShardedTensor]:
    """The blocks of a tensor split over ``size`` ranks along ``dim``, this rank holding
    ``local``. With ``stride`` s the global tensor is s parts (SwiGLU's [gate; up]) and each
    rank holds its slice of every part, so its local tensor is s separate blocks."""
    if local.shape[dim] % stride:
        raise ShardedCheckpointError(
            f"{key}: dim {dim} of {tuple(local.shape)} is not a multiple of stride {stride}"
        )
    part = local.shape[dim] // stride
    global_shape = list(local.shape)
    global_shape[dim] = local.shape[dim] * size
    blocks = []
    for j in range(stride):
        offset = [0] * local.dim()
        offset[dim] = j * part * size + rank * part
        blocks.append(
            ShardedTensor(
                key,
                local.narrow(dim, j * part, part),
                tuple(global_shape),
                tuple(offset),
                main_replica,
            )
        )
    return blocks
