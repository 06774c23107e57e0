"""The ``zarr`` backend (deprecated in the original since v0.14, kept readable): one zarr array
folder per global key, chunked so that every saved block is whole chunks (ranks then write
their blocks side by side without touching each other's chunks); sharded objects as
``<key>/shard_<offsets>_<shape>.pt`` files. bfloat16, which numpy lacks, is stored as its
16-bit pattern with the torch dtype in the array's attributes (the original needed
tensorstore for it)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import zarr
from gpt_parallel.collectives import all_gather_object

from gpt_ckpt.dcp_io import load_object_bytes, object_bytes
from gpt_ckpt.sharded import ShardedCheckpointError, ShardedObject, ShardedTensor

_DTYPE_ATTR = "torch_dtype"
_ARRAY_MARKER = ".zarray"


def _torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ShardedCheckpointError(f"unknown tensor dtype {name!r} in a zarr array")
    return dtype


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy()
    return tensor.numpy()


def _from_numpy(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.view(torch.bfloat16) if dtype == torch.bfloat16 else tensor


def _chunks(
    specs: list[tuple[tuple[int, ...], tuple[int, ...]]], shape: tuple[int, ...]
) -> tuple[int, ...]:
    """The largest chunk shape that every block (offset, size) covers in whole chunks."""
    chunks = []
    for dim, total in enumerate(shape):
        size = total
        for offset, block in specs:
            size = math.gcd(size, math.gcd(offset[dim], block[dim]))
        chunks.append(max(size, 1))
    return tuple(chunks)


def _all_gather(value: Any, group: dist.ProcessGroup | None) -> list[Any]:
    """Every rank's ``value`` (``group`` None: the whole world, when there is one)."""
    if not dist.is_initialized():
        return [value]
    return all_gather_object(value, group if group is not None else dist.group.WORLD)


def write_zarr_blocks(
    directory: Path,
    tensors: Iterable[ShardedTensor],
    objects: Iterable[ShardedObject],
    *,
    group: dist.ProcessGroup | None = None,
) -> None:
    """Collective over ``group`` (default: the world) when torch.distributed is initialized:
    its rank 0 creates every array, then each rank writes its main-replica blocks and objects."""
    tensors = [t for t in tensors if t.main_replica]
    specs = [
        (
            t.key,
            tuple(t.global_shape),
            tuple(t.global_offset),
            tuple(t.data.shape),
            str(t.data.dtype),
        )
        for t in tensors
    ]
    every = [spec for rank_specs in _all_gather(specs, group) for spec in rank_specs]
    if not dist.is_initialized() or dist.get_rank(group) == 0:
        arrays: dict[str, tuple[tuple[int, ...], str, list]] = {}
        for key, shape, offset, size, dtype in every:
            arrays.setdefault(key, (shape, dtype, []))[2].append((offset, size))
        for key, (shape, dtype, blocks) in arrays.items():
            numpy_dtype = _to_numpy(torch.zeros(0, dtype=_torch_dtype(dtype))).dtype
            array = zarr.create_array(
                store=str(directory / key),
                shape=shape,
                chunks=_chunks(blocks, shape),
                dtype=numpy_dtype,
                zarr_format=2,
                fill_value=0,
            )
            array.attrs[_DTYPE_ATTR] = dtype
    if dist.is_initialized():
        dist.barrier(group=group)
    for block in tensors:
        array = zarr.open_array(str(directory / block.key), mode="r+")
        region = tuple(
            slice(o, o + s) for o, s in zip(block.global_offset, block.data.shape, strict=True)
        )
        array[region] = _to_numpy(block.data)
    for obj in objects:
        if obj.main_replica:
            path = directory / f"{obj.unique_key}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(object_bytes(obj.data).getvalue())


def _open(directory: Path, key: str) -> Any:
    path = directory / key
    if not (path / _ARRAY_MARKER).is_file():
        raise ShardedCheckpointError(f"{directory}: the checkpoint holds no tensor {key}")
    try:
        return zarr.open_array(str(path), mode="r")
    except Exception as err:  # zarr raises many kinds for a damaged array
        raise ShardedCheckpointError(f"{path} is corrupt ({type(err).__name__})") from None


def read_zarr_blocks(
    directory: Path, tensors: Iterable[ShardedTensor], objects: Iterable[ShardedObject] = ()
) -> dict[str, Any]:
    """Fill each requested block from its array (any saved chunking); return the objects."""
    for block in tensors:
        array = _open(directory, block.key)
        if tuple(array.shape) != tuple(block.global_shape):
            raise ShardedCheckpointError(
                f"{directory}: {block.key} has global shape {tuple(array.shape)} in the "
                f"checkpoint, this run needs {tuple(block.global_shape)}"
            )
        region = tuple(
            slice(o, o + s) for o, s in zip(block.global_offset, block.data.shape, strict=True)
        )
        try:
            values = array[region]
        except Exception as err:
            raise ShardedCheckpointError(
                f"{directory / block.key} is corrupt or truncated ({type(err).__name__})"
            ) from None
        dtype = _torch_dtype(array.attrs.get(_DTYPE_ATTR, str(block.data.dtype)))
        with torch.no_grad():
            block.data.copy_(_from_numpy(values, dtype))
    out = {}
    for obj in objects:
        path = directory / f"{obj.unique_key}.pt"
        if not path.is_file():
            raise ShardedCheckpointError(f"{directory}: the checkpoint holds no {obj.unique_key}")
        try:
            out[obj.key] = load_object_bytes(path.read_bytes())
        except Exception as err:
            raise ShardedCheckpointError(f"{path} is corrupt ({type(err).__name__})") from None
    return out


def zarr_tensor_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """Every array key of a zarr checkpoint folder with its global shape."""
    return {
        marker.parent.name: tuple(_open(directory, marker.parent.name).shape)
        for marker in sorted(directory.glob(f"*/{_ARRAY_MARKER}"))
    }


def zarr_tensor_dtype(directory: Path, key: str) -> torch.dtype:
    return _torch_dtype(_open(directory, key).attrs[_DTYPE_ATTR])


def zarr_object_keys(directory: Path) -> set[str]:
    """The stored names (``key/shard_..``) of every sharded object."""
    return {f"{p.parent.name}/{p.stem}" for p in directory.glob("*/shard_*.pt")}
