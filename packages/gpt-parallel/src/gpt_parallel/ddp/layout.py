"""Where each parameter sits in a flat gradient buffer, and where the buckets end.

Pure arithmetic (no tensors), so the layout can be checked against a hand-made table. The rules
are the original's ``_ParamAndGradBuffer``:

- parameters are laid out in the order given, which the caller makes the *reverse* of
  registration, because backward produces gradients roughly from the last layer to the first and
  a bucket can then be reduced as soon as its last gradient arrives;
- a bucket closes once it holds at least ``bucket_size`` elements (None: one bucket);
- with the distributed optimizer every parameter starts at a multiple of 64 elements (128-byte
  alignment for 16-bit values) and every bucket ends at a multiple of lcm(dp, 128) (or
  lcm(dp, 128, 2^16) with ``pad_for_high_nccl_busbw``), so it splits into dp equal shards; a
  parameter marked ``starts_new_bucket`` (the original: a shared embedding with the distributed
  optimizer) gets a bucket of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PARAM_ALIGNMENT = 64
BUCKET_ALIGNMENT = 128
HIGH_NCCL_BUSBW_ALIGNMENT = 2**16


@dataclass(frozen=True)
class ParamSlot:
    """A parameter's place: elements ``[start, end)`` of the buffer, inside bucket ``bucket``."""

    start: int
    end: int
    bucket: int


@dataclass(frozen=True)
class BufferLayout:
    """The slots (in the order the parameters were given) and the buckets' ``[start, end)``."""

    slots: tuple[ParamSlot, ...]
    buckets: tuple[tuple[int, int], ...]
    numel: int
    numel_unpadded: int


def _pad(value: int, divisor: int) -> int:
    return math.ceil(value / divisor) * divisor


def bucket_divisor(dp_size: int, pad_for_high_nccl_busbw: bool) -> int:
    """What each bucket's size is a multiple of under the distributed optimizer."""
    if pad_for_high_nccl_busbw:
        return math.lcm(dp_size, BUCKET_ALIGNMENT, HIGH_NCCL_BUSBW_ALIGNMENT)
    return math.lcm(dp_size, BUCKET_ALIGNMENT)


def plan_buffer(
    numels: Sequence[int],
    *,
    bucket_size: int | None,
    dp_size: int = 1,
    use_distributed_optimizer: bool = False,
    pad_for_high_nccl_busbw: bool = False,
    starts_new_bucket: Sequence[bool] | None = None,
) -> BufferLayout:
    """Lay out parameters of ``numels`` elements (buffer order) into buckets; see the module doc."""
    new_bucket = list(starts_new_bucket) if starts_new_bucket is not None else [False] * len(numels)
    if len(new_bucket) != len(numels):
        raise ValueError("starts_new_bucket must have one entry per parameter")
    pad_params = use_distributed_optimizer
    divisor = bucket_divisor(dp_size, pad_for_high_nccl_busbw) if pad_params else 1
    own_bucket = [flag and use_distributed_optimizer for flag in new_bucket]

    slots: list[ParamSlot] = []
    buckets: list[tuple[int, int]] = []
    unpadded = 0
    bucket_start = 0
    in_bucket = 0
    position = 0

    def close_bucket(end: int) -> int:
        nonlocal bucket_start, in_bucket, unpadded
        unpadded += end - bucket_start
        padded_end = _pad(end, divisor)
        buckets.append((bucket_start, padded_end))
        bucket_start, in_bucket = padded_end, 0
        return padded_end

    for numel, alone in zip(numels, own_bucket, strict=True):
        start = _pad(position, PARAM_ALIGNMENT) if pad_params else position
        if alone and in_bucket:
            start = close_bucket(start)
        end = start + numel
        slots.append(ParamSlot(start, end, len(buckets)))
        in_bucket += 1
        full = bucket_size is not None and end - bucket_start >= bucket_size
        position = close_bucket(end) if full or alone else end
    if in_bucket:
        close_bucket(position)
    numel_total = buckets[-1][1] if buckets else 0
    return BufferLayout(tuple(slots), tuple(buckets), numel_total, unpadded)
