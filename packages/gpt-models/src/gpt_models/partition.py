"""Which slice of a tensor-parallel model this process builds.

Layers size themselves from a ``TensorParallelPartition`` (heads, query groups, ffn width and
vocabulary rows per rank) instead of reading a process group or a global; the full model is
the ``size == 1`` case. The partition also carries the tensor-parallel group and whether
sequence parallelism is on, for the provider that will run the collectives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from gpt_parallel.context_parallel import (
    ContextParallelGroups,
    load_balanced_chunk_ids,
    normalize_cp_comm_type,
)

from gpt_models.transformer_config import TransformerConfig

TP_FLAG = "--tensor-model-parallel-size"
CP_FLAG = "--context-parallel-size"


@dataclass(frozen=True)
class TensorParallelPartition:
    """Tensor-parallel size, this process's rank in it, its group and sequence parallelism."""

    size: int = 1
    rank: int = 0
    group: dist.ProcessGroup | None = field(default=None, compare=False, repr=False)
    sequence_parallel: bool = False

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"{TP_FLAG} must be at least 1, not {self.size}")
        if not 0 <= self.rank < self.size:
            raise ValueError(f"tensor-parallel rank {self.rank} is outside {TP_FLAG} {self.size}")

    def divide(self, total: int, flag: str) -> int:
        """``total / size``, or a one-line error naming the flag that set ``total``."""
        if total % self.size:
            raise ValueError(f"{flag} {total} is not divisible by {TP_FLAG} {self.size}")
        return total // self.size

    def heads_per_rank(self, config: TransformerConfig) -> int:
        """Attention heads this rank computes."""
        return self.divide(config.num_attention_heads, "--num-attention-heads")

    def groups_per_rank(self, config: TransformerConfig) -> int:
        """Key/value groups this rank holds (whole groups, so the qkv layout survives)."""
        return self.divide(config.num_groups, "--num-query-groups")

    def ffn_per_rank(self, config: TransformerConfig) -> int:
        """MLP hidden width on this rank (per half of swiglu's [gate; up])."""
        assert config.ffn_hidden_size is not None
        return self.divide(config.ffn_hidden_size, "--ffn-hidden-size")

    def vocab_per_rank(self, config: TransformerConfig) -> int:
        """Rows of the (padded) vocabulary this rank holds."""
        return self.divide(
            config.padded_vocab_size, "padded vocabulary (--make-vocab-size-divisible-by)"
        )

    def full_sequence_length(self, local_length: int) -> int:
        """The sequence length inside the tensor-parallel region, from an activation's
        ``[s, b, h]`` outside it (a sequence shard with sequence parallelism)."""
        return local_length * self.size if self.sequence_parallel else local_length

    def check(self, config: TransformerConfig) -> None:
        """Fail with one line when any split of this model does not come out even."""
        if self.size == 1:
            return  # the full model: nothing is split
        self.heads_per_rank(config)
        self.groups_per_rank(config)
        self.ffn_per_rank(config)
        self.vocab_per_rank(config)


@dataclass(frozen=True)
class ContextParallelPartition:
    """Context-parallel size, this rank in it, its groups and ``--cp-comm-type`` per layer.

    Rank ``r`` holds chunks ``r`` and ``2 * size - 1 - r`` of the sequence cut into ``2 * size``
    (the original's load-balanced layout); attention exchanges keys and values over ``groups``.
    """

    size: int = 1
    rank: int = 0
    groups: ContextParallelGroups | None = field(default=None, compare=False, repr=False)
    comm_types: tuple[str, ...] = ("p2p",)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"{CP_FLAG} must be at least 1, not {self.size}")
        if not 0 <= self.rank < self.size:
            raise ValueError(f"context-parallel rank {self.rank} is outside {CP_FLAG} {self.size}")
        for name in self.comm_types:
            normalize_cp_comm_type(name)

    def check(self, config: TransformerConfig) -> None:
        """One line when ``--cp-comm-type`` lists types for a different number of layers."""
        if len(self.comm_types) not in (1, config.num_layers):
            raise ValueError(
                f"--cp-comm-type lists {len(self.comm_types)} types for --num-layers "
                f"{config.num_layers}: give one type, or one per layer"
            )

    def comm_type(self, layer_number: int) -> str:
        """The communication type of (global, 1-based) layer ``layer_number``."""
        if len(self.comm_types) == 1:
            return self.comm_types[0]
        return self.comm_types[layer_number - 1]

    def positions(
        self, local_length: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """The global sequence positions of this rank's ``local_length`` tokens, in order."""
        if self.size == 1:
            return torch.arange(local_length, device=device)
        chunk = local_length // 2
        return torch.cat(
            [
                torch.arange(c * chunk, (c + 1) * chunk, device=device)
                for c in load_balanced_chunk_ids(self.rank, self.size)
            ]
        )
