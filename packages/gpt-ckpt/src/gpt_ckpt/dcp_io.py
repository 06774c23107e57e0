"""Write and read ``ShardedTensor``/``ShardedObject`` blocks with ``torch.distributed.checkpoint``.

DCP already stores a global tensor as chunks (offsets + sizes in ``.metadata``) and computes,
on load, which parts of which saved chunks cover a requested block. What it lacks is a way to
say "this local tensor is block X of global tensor K" for plain tensors; the two planners here
do exactly that, so a checkpoint is ordinary DCP (``dcp_to_torch_save`` reads it) while every
rank declares only its own blocks. Saving is collective (the coordinator gathers every rank's
chunks into ``.metadata``); loading is not (each rank reads its overlaps on its own), so a bad
file fails on the ranks that need it without leaving the others waiting in a collective.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, DefaultSavePlanner
from torch.distributed.checkpoint.metadata import (
    BytesStorageMetadata,
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    TensorProperties,
    TensorStorageMetadata,
)
from torch.distributed.checkpoint.planner import (
    BytesIOWriteData,
    LoadItemType,
    LoadPlan,
    ReadItem,
    SavePlan,
    TensorWriteData,
    WriteItem,
    WriteItemType,
)
from torch.distributed.checkpoint.planner_helpers import create_read_items_for_chunk_list

from gpt_ckpt.megatron_pickle import safe_globals
from gpt_ckpt.sharded import ShardedCheckpointError, ShardedObject, ShardedTensor

METADATA_FILENAME = ".metadata"


@contextmanager
def _quiet() -> Iterator[None]:
    """DCP warns on every single-process call that it assumes a single process: we mean it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed is disabled")
        yield


def object_bytes(value: Any) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return buffer


def load_object_bytes(value: io.BytesIO | bytes) -> Any:
    """A stored object (RNG state, common state) with the same allow-list as legacy files."""
    stream = value if isinstance(value, io.BytesIO) else io.BytesIO(value)
    with torch.serialization.safe_globals(safe_globals()):
        return torch.load(stream, map_location="cpu", weights_only=True)


class _BlockSavePlanner(DefaultSavePlanner):
    """Writes the given main-replica blocks; DefaultSavePlanner merges every rank's chunks
    into one ``Metadata`` and checks that the chunks of each key tile its global shape."""

    def __init__(self, tensors: list[ShardedTensor], objects: list[ShardedObject]) -> None:
        super().__init__(flatten_state_dict=False, flatten_sharded_tensors=False)
        self._tensors = {(t.key, tuple(t.global_offset)): t for t in tensors}
        self._objects = {o.unique_key: o for o in objects}

    def create_local_plan(self) -> SavePlan:
        items = []
        for (key, offset), block in self._tensors.items():
            data = block.data
            items.append(
                WriteItem(
                    index=MetadataIndex(key, torch.Size(offset)),
                    type=WriteItemType.SHARD,
                    tensor_data=TensorWriteData(
                        chunk=ChunkStorageMetadata(
                            offsets=torch.Size(offset), sizes=torch.Size(data.shape)
                        ),
                        properties=TensorProperties.create_from_tensor(data),
                        size=torch.Size(block.global_shape),
                    ),
                )
            )
        for name, obj in self._objects.items():
            nbytes = object_bytes(obj.data).getbuffer().nbytes
            items.append(
                WriteItem(
                    index=MetadataIndex(name),
                    type=WriteItemType.BYTE_IO,
                    bytes_io_data=BytesIOWriteData(nbytes),
                )
            )
        self.plan = SavePlan(items)
        return self.plan

    def resolve_data(self, write_item: WriteItem) -> torch.Tensor | io.BytesIO:
        if write_item.type == WriteItemType.BYTE_IO:
            return object_bytes(self._objects[write_item.index.fqn].data)
        offset = tuple(write_item.index.offset)
        return self._tensors[(write_item.index.fqn, offset)].data.detach().contiguous()


def write_blocks(
    directory: str | Path,
    tensors: Iterable[ShardedTensor],
    objects: Iterable[ShardedObject] = (),
    *,
    process_group: dist.ProcessGroup | None = None,
) -> None:
    """Collective when torch.distributed is initialized: every rank's main-replica blocks go
    to ``directory`` (``.metadata`` + ``__{rank}_0.distcp``); the rest are skipped."""
    tensors = [t for t in tensors if t.main_replica]
    objects = [o for o in objects if o.main_replica]
    writer = dcp.FileSystemWriter(str(directory), single_file_per_rank=True, sync_files=True)
    with _quiet():
        dcp.save(
            {},
            storage_writer=writer,
            planner=_BlockSavePlanner(tensors, objects),
            process_group=process_group,
            no_dist=not (dist.is_available() and dist.is_initialized()),
        )


class _BlockLoadPlanner(DefaultLoadPlanner):
    """Fills the requested blocks in place from the overlapping saved chunks."""

    def __init__(self, tensors: list[ShardedTensor], objects: list[ShardedObject]) -> None:
        super().__init__(flatten_state_dict=False, flatten_sharded_tensors=False)
        self._blocks: dict[str, list[ShardedTensor]] = defaultdict(list)
        for block in tensors:
            self._blocks[block.key].append(block)
        self._objects = {o.unique_key: o for o in objects}
        self.loaded: dict[str, Any] = {}

    def set_up_planner(self, state_dict, metadata=None, is_coordinator=False) -> None:
        self.state_dict = state_dict
        self.metadata = metadata
        self.is_coordinator = is_coordinator

    def create_local_plan(self) -> LoadPlan:
        assert self.metadata is not None
        saved = self.metadata.state_dict_metadata
        items: list[ReadItem] = []
        for key, blocks in self._blocks.items():
            chunks = [
                ChunkStorageMetadata(
                    offsets=torch.Size(b.global_offset), sizes=torch.Size(b.data.shape)
                )
                for b in blocks
            ]
            items += create_read_items_for_chunk_list(key, saved[key], chunks)
        for name in self._objects:
            index = MetadataIndex(name)
            items.append(
                ReadItem(
                    type=LoadItemType.BYTE_IO,
                    dest_index=index,
                    dest_offsets=torch.Size((0,)),
                    storage_index=index,
                    storage_offsets=torch.Size((0,)),
                    lengths=torch.Size((0,)),
                )
            )
        return LoadPlan(items)

    def resolve_tensor(self, read_item: ReadItem) -> torch.Tensor:
        block = self._blocks[read_item.dest_index.fqn][read_item.dest_index.index]
        view = block.data
        for dim, (start, length) in enumerate(
            zip(read_item.dest_offsets, read_item.lengths, strict=True)
        ):
            view = view.narrow(dim, start, length)
        return view

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        self.loaded[read_item.dest_index.fqn] = load_object_bytes(value)


def read_metadata(directory: str | Path) -> Metadata:
    """The DCP ``.metadata`` of a checkpoint folder (one line naming the file when unreadable)."""
    path = Path(directory) / METADATA_FILENAME
    if not path.is_file():
        raise ShardedCheckpointError(f"{path} does not exist")
    try:
        return dcp.FileSystemReader(str(directory)).read_metadata()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as err:
        raise ShardedCheckpointError(f"{path} is corrupt or truncated ({err})") from None


def _check_request(
    directory: Path, metadata: Metadata, tensors: list[ShardedTensor], objects: list[ShardedObject]
) -> None:
    """Every requested key exists with the right global shape, and every data file it needs is
    whole, so that a damaged checkpoint fails in one line naming what is wrong."""
    saved = metadata.state_dict_metadata
    for block in tensors:
        stored = saved.get(block.key)
        if not isinstance(stored, TensorStorageMetadata):
            raise ShardedCheckpointError(f"{directory}: the checkpoint holds no tensor {block.key}")
        if tuple(stored.size) != tuple(block.global_shape):
            raise ShardedCheckpointError(
                f"{directory}: {block.key} has global shape {tuple(stored.size)} in the "
                f"checkpoint, this run needs {tuple(block.global_shape)}"
            )
    for obj in objects:
        if not isinstance(saved.get(obj.unique_key), BytesStorageMetadata):
            raise ShardedCheckpointError(f"{directory}: the checkpoint holds no {obj.unique_key}")
    storage = metadata.storage_data or {}
    ends: dict[str, int] = {}
    for info in storage.values():
        ends[info.relative_path] = max(ends.get(info.relative_path, 0), info.offset + info.length)
    for name, end in ends.items():
        path = directory / name
        if not path.is_file():
            raise ShardedCheckpointError(f"{path} is missing")
        if path.stat().st_size < end:
            raise ShardedCheckpointError(
                f"{path} is truncated ({path.stat().st_size} bytes, the metadata says {end})"
            )


def read_blocks(
    directory: str | Path,
    tensors: Iterable[ShardedTensor],
    objects: Iterable[ShardedObject] = (),
) -> dict[str, Any]:
    """Fill each requested block's ``data`` in place (any saved layout) and return the
    requested objects by their ``key``. Not collective."""
    directory = Path(directory)
    tensors, objects = list(tensors), list(objects)
    metadata = read_metadata(directory)
    _check_request(directory, metadata, tensors, objects)
    planner = _BlockLoadPlanner(tensors, objects)
    try:
        with _quiet():
            dcp.load(
                {},
                storage_reader=dcp.FileSystemReader(str(directory)),
                planner=planner,
                no_dist=True,
            )
    except Exception as err:  # DCP wraps every per-item failure; name the folder instead
        first = str(err).strip().splitlines()
        raise ShardedCheckpointError(
            f"{directory}: reading the checkpoint failed ({first[-1] if first else type(err).__name__})"
        ) from None
    by_unique = {o.unique_key: o.key for o in objects}
    return {by_unique[name]: value for name, value in planner.loaded.items()}


def saved_tensor_shapes(directory: str | Path) -> dict[str, tuple[int, ...]]:
    """Every tensor key of a DCP folder with its global shape."""
    saved = read_metadata(directory).state_dict_metadata
    return {
        key: tuple(md.size) for key, md in saved.items() if isinstance(md, TensorStorageMetadata)
    }


def saved_tensor_dtype(directory: str | Path, key: str) -> torch.dtype:
    """The dtype a tensor was saved with."""
    md = read_metadata(directory).state_dict_metadata[key]
    assert isinstance(md, TensorStorageMetadata)
    return md.properties.dtype
