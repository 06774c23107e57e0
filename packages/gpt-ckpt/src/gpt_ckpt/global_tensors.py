"""Whole-model access to sharded checkpoints, for converters: write a dict of global tensors
as one checkpoint folder, or read every global tensor of one back, in any sharded format."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gpt_ckpt.dcp_io import saved_tensor_dtype, saved_tensor_shapes
from gpt_ckpt.dist_dir import detect_format, load_sharded, read_common, save_sharded
from gpt_ckpt.sharded import ShardedCheckpointError, ShardedTensor


def save_global_tensors(
    iter_dir: str | Path,
    fmt: str,
    tensors: Mapping[str, torch.Tensor],
    common: dict[str, Any],
) -> Path:
    """Write ``tensors`` (global key -> full tensor) and ``common`` (args, iteration, ...) as
    the checkpoint folder ``iter_dir`` (e.g. ``<save>/iter_0000100``) in ``fmt``. Run it in one
    process (or on every rank of a group with the same tensors: rank 0's copy is written)."""
    import torch.distributed as dist

    main = not dist.is_initialized() or dist.get_rank() == 0
    blocks = [
        ShardedTensor.whole(key, value.detach().cpu(), main) for key, value in tensors.items()
    ]
    return save_sharded(iter_dir, fmt, blocks, [], common)


def global_tensor_shapes(iter_dir: str | Path) -> dict[str, tuple[int, ...]]:
    """Every global tensor key of a sharded checkpoint folder with its shape."""
    iter_dir = Path(iter_dir)
    if detect_format(iter_dir) == "zarr":
        from gpt_ckpt.zarr_io import zarr_tensor_shapes

        return zarr_tensor_shapes(iter_dir)
    return saved_tensor_shapes(iter_dir)


def read_global_tensor(iter_dir: str | Path, key: str) -> torch.Tensor:
    """One whole global tensor."""
    iter_dir = Path(iter_dir)
    shapes = global_tensor_shapes(iter_dir)
    if key not in shapes:
        raise ShardedCheckpointError(f"{iter_dir}: the checkpoint holds no tensor {key}")
    if detect_format(iter_dir) == "zarr":
        from gpt_ckpt.zarr_io import zarr_tensor_dtype

        dtype = zarr_tensor_dtype(iter_dir, key)
    else:
        dtype = saved_tensor_dtype(iter_dir, key)
    out = torch.empty(shapes[key], dtype=dtype)
    load_sharded(iter_dir, [ShardedTensor.whole(key, out)])
    return out


def iter_global_tensors(
    iter_dir: str | Path, *, progress: bool = False
) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, whole tensor) for every tensor of a checkpoint folder, one at a time (sorted),
    so a converter holds one tensor at a time; ``progress`` shows a bar on stderr."""
    keys = sorted(global_tensor_shapes(iter_dir))
    for key in tqdm(keys, desc="reading tensors", unit="tensor", disable=not progress):
        yield key, read_global_tensor(iter_dir, key)


__all__ = [
    "global_tensor_shapes",
    "iter_global_tensors",
    "read_common",
    "read_global_tensor",
    "save_global_tensors",
]
