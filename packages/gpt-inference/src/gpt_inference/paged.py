"""The dynamic engine's KV memory: one buffer cut into fixed-size blocks, a list of blocks per
request (the original's "chunked" KV cache, `dynamic_context.py`).

`PagedKVCache` is a KV store (`kv_cache.KVStore`): before a forward step the engine says which
requests the batch rows are and where each row's new tokens start (`bind`); each layer then
writes its new keys/values into those requests' blocks and attends over each row's own keys,
gathered from its blocks and padded to the longest row (the padding is masked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


class OutOfBlocks(RuntimeError):
    """No free block for a request that must grow (the engine pauses it)."""


@dataclass(frozen=True)
class MemoryLayout:
    """How the buffer is cut: `num_blocks` blocks of `block_size` tokens for every layer."""

    num_blocks: int
    block_size: int
    num_layers: int
    num_groups: int
    head_dim: int
    dtype: torch.dtype

    @classmethod
    def from_buffer(
        cls,
        buffer_size_gb: float,
        block_size: int,
        *,
        num_layers: int,
        num_groups: int,
        head_dim: int,
        dtype: torch.dtype,
    ) -> MemoryLayout:
        """As many blocks as `buffer_size_gb` holds (keys and values of every layer)."""
        item = torch.empty((), dtype=dtype).element_size()
        per_block = 2 * num_layers * block_size * num_groups * head_dim * item
        blocks = int(buffer_size_gb * 1024**3) // per_block
        return cls(blocks, block_size, num_layers, num_groups, head_dim, dtype)

    def blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.block_size)


class BlockAllocator:
    """Free block ids; `reserved` of them only go to requests already running (the original's
    guaranteed fraction), so new requests cannot take the last blocks running ones need."""

    def __init__(self, num_blocks: int, reserved: int) -> None:
        self.free = list(range(num_blocks - 1, -1, -1))
        self.reserved = min(reserved, num_blocks)
        self.total = num_blocks

    def available(self, for_new_request: bool) -> int:
        return len(self.free) - (self.reserved if for_new_request else 0)

    def take(self, count: int, for_new_request: bool = False) -> list[int]:
        if count > self.available(for_new_request):
            raise OutOfBlocks(f"{count} blocks wanted, {self.available(for_new_request)} free")
        return [self.free.pop() for _ in range(count)]

    def give_back(self, blocks: list[int]) -> None:
        self.free.extend(reversed(blocks))


@dataclass
class RowBinding:
    """One batch row of the next forward step: its request's blocks and its cached length."""

    blocks: list[int]
    cached: int


class PagedKVCache:
    """Keys and values of all requests, in blocks; a KV store for the bound batch rows."""

    def __init__(self, layout: MemoryLayout, device: torch.device | str = "cpu") -> None:
        self.layout = layout
        shape = (
            layout.num_layers,
            layout.num_blocks,
            layout.block_size,
            layout.num_groups,
            layout.head_dim,
        )
        self.keys = torch.zeros(shape, dtype=layout.dtype, device=device)
        self.values = torch.zeros(shape, dtype=layout.dtype, device=device)
        self.rows: list[RowBinding] = []
        self._step_index: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def bind(self, rows: list[RowBinding]) -> None:
        """The rows of the next forward step, in batch order."""
        self.rows = rows
        self._step_index = None

    def _slots(self, row: RowBinding, start: int, count: int) -> torch.Tensor:
        """Flat slot numbers (block * block_size + offset) of positions start .. start+count."""
        positions = torch.arange(start, start + count)
        size = self.layout.block_size
        blocks = torch.tensor(row.blocks, dtype=torch.long)[positions // size]
        return blocks * size + positions % size

    def _index(
        self, s: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where this step's [s, b] keys go and where the [longest, b] keys come from, once per
        step (every layer uses the same slots). Past a row's length the read index repeats its
        first slot: those keys are masked, so their values never count."""
        if self._step_index is not None and self._step_index[0] == s:
            return self._step_index[1:]
        lengths = [row.cached + s for row in self.rows]
        longest = max(lengths)
        write = torch.stack([self._slots(row, row.cached, s) for row in self.rows], dim=1)
        read = torch.stack(
            [
                torch.cat(
                    [
                        self._slots(row, 0, length),
                        self._slots(row, 0, 1).expand(longest - length),
                    ]
                )
                for row, length in zip(self.rows, lengths, strict=True)
            ],
            dim=1,
        )
        # Query i of row r sits at position cached_r + i and sees keys 0 .. cached_r + i.
        query_pos = torch.arange(s)[None, :, None]
        cached = torch.tensor([row.cached for row in self.rows])
        key_pos = torch.arange(longest)[None, None, :]
        mask = (key_pos > (cached[:, None, None] + query_pos))[:, None]
        self._step_index = (s, write.to(device), read.to(device), mask.to(device))
        return self._step_index[1:]

    def store_and_fetch(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, b = key.shape[:2]
        assert b == len(self.rows), "bind the batch rows before the forward step"
        write, read, mask = self._index(s, key.device)
        keys = self.keys[layer].flatten(0, 1)  # [blocks * block_size, groups, head_dim], a view
        values = self.values[layer].flatten(0, 1)
        keys[write] = key
        values[write] = value
        return keys[read], values[read], mask
