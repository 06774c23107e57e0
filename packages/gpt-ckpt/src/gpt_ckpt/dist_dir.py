"""One sharded checkpoint folder (``iter_XXXXXXX``) in the formats of §4.4 of the reference.

``torch_dist``: DCP's ``.metadata`` + ``__{rank}_0.distcp``, ``common.pt`` (rank 0's
non-sharded state) and ``metadata.json`` ``{"sharded_backend": "torch_dist",
"sharded_backend_version": 1}``. ``torch_dcp``: plain DCP (torch's own tools read it), the
common state stored inside as the object ``common_state``. ``zarr``: one zarr array per key
(``zarr_io``), ``common.pt`` and ``metadata.json`` with backend "zarr".

Crash safety: every rank writes into ``iter_XXXXXXX.partial``; rank 0 writes ``metadata.json``
last, syncs, and renames the folder into place, so a killed save leaves only a ``.partial``
folder that nothing reads. The caller writes the tracker afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from gpt_ckpt.dcp_io import (
    METADATA_FILENAME,
    load_object_bytes,
    read_blocks,
    read_metadata,
    write_blocks,
)
from gpt_ckpt.legacy_reader import CHECKPOINT_FILENAME, LegacyCheckpointError, load_file
from gpt_ckpt.sharded import ShardedCheckpointError, ShardedObject, ShardedTensor

SHARDED_FORMATS = ("torch_dist", "torch_dcp", "zarr", "fsdp_dtensor")
METADATA_JSON = "metadata.json"
COMMON_FILENAME = "common.pt"
COMMON_OBJECT_KEY = "common_state"
_BACKEND_VERSION = 1
_WITH_COMMON_FILE = ("torch_dist", "zarr")
"""Formats whose non-sharded state is a ``common.pt`` (the others keep it inside DCP)."""


def _common_object(common: dict[str, Any], writes: bool) -> ShardedObject:
    return ShardedObject(COMMON_OBJECT_KEY, common, (1,), (0,), writes)


def _is_coordinator(group: dist.ProcessGroup | None = None) -> bool:
    return not dist.is_initialized() or dist.get_rank(group) == 0


def _barrier(group: dist.ProcessGroup | None = None) -> None:
    if dist.is_initialized():
        dist.barrier(group=group)


def fsync_path(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fsync_path(path)
    fsync_path(folder)


def _atomic_torch_save(value: Any, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    torch.save(value, partial)
    fsync_path(partial)
    os.replace(partial, path)


def staging_dir(iter_dir: Path) -> Path:
    """Where a save is written before it is renamed into place."""
    return iter_dir.with_name(iter_dir.name + ".partial")


def write_staging(
    iter_dir: str | Path,
    fmt: str,
    tensors: Iterable[ShardedTensor],
    objects: Iterable[ShardedObject],
    common: dict[str, Any],
    *,
    group: dist.ProcessGroup | None = None,
) -> Path:
    """Every rank's blocks into ``iter_dir.partial`` (collective over ``group``, default: the
    world). Nothing reads that folder until ``publish`` renames it."""
    if fmt not in SHARDED_FORMATS:
        raise ShardedCheckpointError(f"unknown sharded checkpoint format {fmt!r}")
    staging = staging_dir(Path(iter_dir))
    coordinator = _is_coordinator(group)
    if coordinator:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier(group)
    tensors, objects = list(tensors), list(objects)
    if fmt not in _WITH_COMMON_FILE:
        objects.append(_common_object(common, coordinator))
    if fmt == "zarr":
        from gpt_ckpt.zarr_io import write_zarr_blocks

        write_zarr_blocks(staging, tensors, objects, group=group)
    else:
        write_blocks(staging, tensors, objects, process_group=group)
    _barrier(group)
    return staging


def publish(iter_dir: str | Path, fmt: str, common: dict[str, Any]) -> Path:
    """On one rank, after every rank's ``write_staging`` returned: ``common.pt``, then
    ``metadata.json`` last, flush everything, rename the folder into place."""
    iter_dir = Path(iter_dir)
    staging = staging_dir(iter_dir)
    if fmt in _WITH_COMMON_FILE:
        _atomic_torch_save(common, staging / COMMON_FILENAME)
    if fmt != "torch_dcp":  # plain DCP has no metadata.json
        marker = staging / METADATA_JSON
        marker.write_text(
            json.dumps({"sharded_backend": fmt, "sharded_backend_version": _BACKEND_VERSION})
        )
    _fsync_tree(staging)
    if iter_dir.exists():
        old = iter_dir.with_name(iter_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(iter_dir, old)
        shutil.rmtree(old)
    os.replace(staging, iter_dir)
    fsync_path(iter_dir.parent)
    return iter_dir


def save_sharded(
    iter_dir: str | Path,
    fmt: str,
    tensors: Iterable[ShardedTensor],
    objects: Iterable[ShardedObject],
    common: dict[str, Any],
) -> Path:
    """Write one checkpoint folder; collective over the default group when initialized.
    ``common`` is taken from global rank 0."""
    write_staging(iter_dir, fmt, tensors, objects, common)
    if _is_coordinator():
        publish(iter_dir, fmt, common)
    _barrier()
    return Path(iter_dir)


def detect_format(iter_dir: str | Path) -> str:
    """``torch`` (legacy ``mp_rank_*`` files) or the sharded format of a checkpoint folder."""
    iter_dir = Path(iter_dir)
    marker = iter_dir / METADATA_JSON
    if marker.is_file():
        try:
            backend = json.loads(marker.read_text())["sharded_backend"]
        except (ValueError, KeyError, TypeError):
            raise ShardedCheckpointError(f"{marker} is corrupt (no sharded_backend)") from None
        if backend not in SHARDED_FORMATS:
            raise ShardedCheckpointError(f"{marker} names unknown backend {backend!r}")
        return backend
    if (iter_dir / METADATA_FILENAME).is_file():
        return "torch_dcp"
    if any(iter_dir.glob(f"mp_rank_*/{CHECKPOINT_FILENAME}")):
        return "torch"
    if not iter_dir.is_dir():
        raise ShardedCheckpointError(f"checkpoint directory {iter_dir} does not exist")
    raise ShardedCheckpointError(
        f"{iter_dir} holds no checkpoint ({METADATA_JSON}, {METADATA_FILENAME} or mp_rank_*)"
    )


def read_common(iter_dir: str | Path) -> dict[str, Any]:
    """The non-sharded state (args, iteration, scheduler, ...) of a sharded checkpoint."""
    iter_dir = Path(iter_dir)
    fmt = detect_format(iter_dir)
    if fmt in _WITH_COMMON_FILE:
        try:
            common = load_file(iter_dir / COMMON_FILENAME)
        except LegacyCheckpointError as err:
            raise ShardedCheckpointError(str(err)) from None
        except Exception as err:  # a truncated zip or pickle
            raise ShardedCheckpointError(
                f"{iter_dir / COMMON_FILENAME} is corrupt or truncated ({type(err).__name__})"
            ) from None
    else:
        common = read_blocks(iter_dir, [], [_common_object({}, False)])[COMMON_OBJECT_KEY]
    if not isinstance(common, dict):
        raise ShardedCheckpointError(f"{iter_dir}: the common state is not a dict")
    return common


def load_sharded(
    iter_dir: str | Path,
    tensors: Iterable[ShardedTensor],
    objects: Iterable[ShardedObject] = (),
) -> dict[str, Any]:
    """Fill the requested blocks in place from any saved layout; return the objects by key."""
    iter_dir = Path(iter_dir)
    if detect_format(iter_dir) == "zarr":
        from gpt_ckpt.zarr_io import read_zarr_blocks

        return read_zarr_blocks(iter_dir, tensors, objects)
    return read_blocks(iter_dir, tensors, objects)


def saved_object_keys(iter_dir: str | Path) -> set[str]:
    """The stored names (``key/shard_..``) of every sharded object in a checkpoint folder."""
    iter_dir = Path(iter_dir)
    if detect_format(iter_dir) == "zarr":
        from gpt_ckpt.zarr_io import zarr_object_keys

        return zarr_object_keys(iter_dir)
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    saved = read_metadata(iter_dir).state_dict_metadata
    return {key for key, md in saved.items() if isinstance(md, BytesStorageMetadata)}


__all__ = [
    "COMMON_FILENAME",
    "METADATA_JSON",
    "SHARDED_FORMATS",
    "detect_format",
    "load_object_bytes",
    "load_sharded",
    "publish",
    "read_common",
    "save_sharded",
    "saved_object_keys",
    "write_staging",
]
