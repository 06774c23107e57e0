"""Key/value caches and how a model's attention reads them during generation.

The model's layers are left as they are: for the duration of a generation each layer's core
attention is wrapped (`cached_attention`) so that it first hands this step's keys and values
to a store, then attends over everything the store holds for that layer. Two stores:
`StaticKVCache` (one contiguous buffer per layer, all rows at the same position, the original's
static context) and `gpt_inference.paged.PagedKVCache` (blocks per request, for the dynamic
engine).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn


class KVStore(Protocol):
    """Where a layer's keys and values go, and what it attends over."""

    def store_and_fetch(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Keep this step's key/value [s, b, ng, d]; return all keys, values [sk, b, ng, d]
        and a bool mask broadcastable to [b, 1, s, sk] (True = not attended), or None for
        causal attention aligned to the last key."""
        ...


class StaticKVCache:
    """One [max_len, b, ng, d] buffer pair per layer; every row is at the same position.

    `start` is the position of the first token of the next forward step (the runner sets it).
    The mask is the kernel's causal one aligned to the newest key, which is exactly right when
    all rows advance together."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.start = 0
        self._keys: dict[int, torch.Tensor] = {}
        self._values: dict[int, torch.Tensor] = {}

    def store_and_fetch(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        end = self.start + key.shape[0]
        if end > self.max_len:
            raise ValueError(f"KV cache of {self.max_len} positions cannot hold position {end}")
        if layer not in self._keys:
            shape = (self.max_len, *key.shape[1:])
            self._keys[layer] = key.new_empty(shape)
            self._values[layer] = value.new_empty(shape)
        keys, values = self._keys[layer], self._values[layer]
        keys[self.start : end] = key
        values[self.start : end] = value
        return keys[:end], values[:end], None


class _CachedCoreAttention(nn.Module):
    """A layer's core attention reading and writing a KV store."""

    def __init__(self, inner: nn.Module, store: KVStore, layer: int) -> None:
        super().__init__()
        self.inner = inner
        self.store = store
        self.layer = layer

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        keys, values, mask = self.store.store_and_fetch(self.layer, key, value)
        return self.inner(query, keys, values, mask)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of each layer of this (stage of the) model, in order."""
    return [layer.self_attention for layer in model.decoder.layers]


@contextmanager
def cached_attention(model: nn.Module, store: KVStore) -> Iterator[None]:
    """Within the block, every layer's core attention goes through `store`."""
    modules = attention_modules(model)
    originals = [m.core_attention for m in modules]
    try:
        for index, (module, inner) in enumerate(zip(modules, originals)):
            module.core_attention = _CachedCoreAttention(inner, store, index)
        yield
    finally:
        for module, inner in zip(modules, originals):
            module.core_attention = inner
