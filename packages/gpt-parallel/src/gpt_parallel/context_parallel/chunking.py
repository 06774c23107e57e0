"""Load-balanced causal chunking of the sequence over the context-parallel group.

With causal attention, the last tokens of a sequence attend to many more keys than the first
ones, so cutting the sequence into CP contiguous pieces would give the last rank most of the
work. The original (``get_batch_on_this_cp_rank``) cuts it into ``2 * CP`` chunks and gives rank
``r`` chunks ``r`` and ``2 * CP - 1 - r``: one cheap and one expensive chunk each, so every rank
does the same work. The attention kernels in this package rely on exactly this layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from gpt_parallel.collectives import ProcessGroup, group_size


def load_balanced_chunk_ids(cp_rank: int, cp_size: int) -> tuple[int, int]:
    """The two chunk indices (out of ``2 * cp_size``) that ``cp_rank`` keeps, in local order."""
    if not 0 <= cp_rank < cp_size:
        raise ValueError(
            f"context-parallel rank {cp_rank} is outside --context-parallel-size {cp_size}"
        )
    return cp_rank, 2 * cp_size - 1 - cp_rank


def check_sequence_divisible(seq_len: int, cp_size: int) -> None:
    """One-line error when the sequence cannot be cut into ``2 * CP`` equal chunks."""
    if seq_len % (2 * cp_size) != 0:
        raise ValueError(
            f"--seq-length {seq_len} must be divisible by 2 * --context-parallel-size "
            f"({2 * cp_size}) for load-balanced context parallelism"
        )


def split_for_context_parallel(
    tensor: torch.Tensor, seq_dim: int, cp_rank: int, cp_size: int
) -> torch.Tensor:
    """This rank's part of ``tensor``: chunks ``cp_rank`` and ``2*cp_size-1-cp_rank`` along ``seq_dim``."""
    if cp_size == 1:
        return tensor
    seq_dim = seq_dim % tensor.dim()
    seq_len = tensor.shape[seq_dim]
    check_sequence_divisible(seq_len, cp_size)
    chunked = tensor.reshape(
        *tensor.shape[:seq_dim], 2 * cp_size, seq_len // (2 * cp_size), *tensor.shape[seq_dim + 1 :]
    )
    index = torch.tensor(load_balanced_chunk_ids(cp_rank, cp_size), device=tensor.device)
    local = chunked.index_select(seq_dim, index)
    return local.reshape(*tensor.shape[:seq_dim], -1, *tensor.shape[seq_dim + 1 :])


def merge_context_parallel_shards(shards: Sequence[torch.Tensor], seq_dim: int) -> torch.Tensor:
    """The inverse of ``split_for_context_parallel``: every rank's shard, in rank order, to the
    full sequence."""
    cp_size = len(shards)
    chunks: list[torch.Tensor | None] = [None] * (2 * cp_size)
    for rank, shard in enumerate(shards):
        first, second = shard.chunk(2, dim=seq_dim)
        low, high = load_balanced_chunk_ids(rank, cp_size)
        chunks[low], chunks[high] = first, second
    return torch.cat(chunks, dim=seq_dim)


def gather_from_context_parallel(
    tensor: torch.Tensor, seq_dim: int, group: ProcessGroup | None
) -> torch.Tensor:
    """All-gather every rank's shard over ``group`` and restore the full sequence (no autograd)."""
    if group_size(group) == 1:
        return tensor
    shards = [torch.empty_like(tensor) for _ in range(group_size(group))]
    torch.distributed.all_gather(shards, tensor.contiguous(), group=group)
    return merge_context_parallel_shards(shards, seq_dim)


def split_batch_for_context_parallel(
    batch: Mapping[str, torch.Tensor | None], cp_rank: int, cp_size: int
) -> dict[str, torch.Tensor | None]:
    """The original's ``get_batch_on_this_cp_rank``: every tensor of a ``[b, s]`` batch (tokens,
    labels, loss mask, position ids) split on dim 1, an ``attention_mask`` ``[b, 1, s, s]`` on
    dim 2 (its query rows); ``None`` entries stay ``None``."""
    out: dict[str, torch.Tensor | None] = {}
    for key, value in batch.items():
        seq_dim = 2 if key == "attention_mask" else 1
        out[key] = (
            None if value is None else split_for_context_parallel(value, seq_dim, cp_rank, cp_size)
        )
    return out
