"""Which slice of a tensor-parallel model this process builds.

Layers size themselves from a ``TensorParallelPartition`` (heads, query groups, ffn width and
vocabulary rows per rank) instead of reading a process group or a global; the full model is
the ``size == 1`` case. The partition also carries the tensor-parallel group and whether
sequence parallelism is on, for the provider that will run the collectives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.distributed as dist

from gpt_models.transformer_config import TransformerConfig

TP_FLAG = "--tensor-model-parallel-size"


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

    def check(self, config: TransformerConfig) -> None:
        """Fail with one line when any split of this model does not come out even."""
        if self.size == 1:
            return  # the full model: nothing is split
        self.heads_per_rank(config)
        self.groups_per_rank(config)
        self.ffn_per_rank(config)
        self.vocab_per_rank(config)
