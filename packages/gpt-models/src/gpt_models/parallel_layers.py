"""The tensor-parallel building blocks the provider makes when ``--tensor-model-parallel-size``
is above 1: column- and row-parallel linears, the vocab-parallel embedding and output layer.

Each is the one-rank module (same parameters, same state-dict keys) plus the collectives at the
edges of its tensor-parallel region, from ``gpt_parallel.tensor_parallel``:

- a column-parallel linear's input enters the region: copied (backward all-reduces), or with
  sequence parallelism all-gathered along the sequence (backward reduce-scatters);
- a row-parallel linear's partial output leaves it: all-reduced, or reduce-scattered along the
  sequence; its bias is added after the reduction (or handed back unadded);
- the embedding looks up only the rows of its vocabulary range, zeroes the other tokens and
  sums over the ranks (reduce-scatters into sequence shards with sequence parallelism and no
  learned positions, as the original);
- the output layer enters the region like a column-parallel linear; its logits cover this
  rank's vocabulary range and ``gather_vocab`` concatenates them when full logits are wanted.

The collectives run eagerly (``torch.compiler.disable``) even inside a compiled layer region:
the compiled graphs hold the arithmetic around them, never a process group.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from gpt_parallel.context_parallel import context_parallel_attention
from gpt_parallel.tensor_parallel import (
    copy_to_tensor_parallel_region,
    gather_from_sequence_parallel_region,
    gather_from_tensor_parallel_region,
    reduce_from_tensor_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
    scatter_to_sequence_parallel_region,
    vocab_parallel_cross_entropy,
    vocab_range,
)

from gpt_models.embedding import Embedding, OutputLayer
from gpt_models.kernels import matmul
from gpt_models.kernels.regions import eager
from gpt_models.linear import Linear
from gpt_models.partition import ContextParallelPartition, TensorParallelPartition

_copy = eager(copy_to_tensor_parallel_region)
_reduce = eager(reduce_from_tensor_parallel_region)
_gather_sequence = eager(gather_from_sequence_parallel_region)
_reduce_scatter_sequence = eager(reduce_scatter_to_sequence_parallel_region)
_scatter_sequence = eager(scatter_to_sequence_parallel_region)
_gather_vocab = eager(gather_from_tensor_parallel_region)
_vocab_parallel_cross_entropy = eager(vocab_parallel_cross_entropy)
_context_parallel_attention = eager(context_parallel_attention)


def enter_region(x: torch.Tensor, partition: TensorParallelPartition) -> torch.Tensor:
    """The input every rank of a column-parallel region needs whole (``[s, b, h]``)."""
    if partition.sequence_parallel:
        return _gather_sequence(x, partition.group)
    return _copy(x, partition.group)


def leave_region(x: torch.Tensor, partition: TensorParallelPartition) -> torch.Tensor:
    """The sum of the ranks' partial outputs (this rank's sequence shard with SP)."""
    if partition.sequence_parallel:
        return _reduce_scatter_sequence(x, partition.group)
    return _reduce(x, partition.group)


def scatter_to_sequence_shards(x: torch.Tensor, partition: TensorParallelPartition) -> torch.Tensor:
    """This rank's shard of a whole ``[s, b, h]`` activation (sequence parallelism)."""
    return _scatter_sequence(x, partition.group)


class ColumnParallelLinear(Linear):
    """y_r = x W_r^T: this rank's rows of W (outputs); the input enters the region."""

    def __init__(self, *args, partition: TensorParallelPartition, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.partition = partition

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return super().forward(enter_region(x, self.partition))


class RowParallelLinear(Linear):
    """y = sum_r x_r W_r^T: this rank's columns of W (inputs); the output leaves the region."""

    def __init__(self, *args, partition: TensorParallelPartition, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.partition = partition

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = leave_region(matmul.linear(x, self.weight), self.partition)
        if self.skip_bias_add:
            return out, self.bias
        return (out if self.bias is None else out + self.bias), None


class VocabParallelEmbedding(Embedding):
    """Rows ``vocab_range(V, rank, tp)`` of the word embeddings.

    ``reduce_scatter`` (sequence parallelism without learned positions) returns this rank's
    sequence shard ``[s/tp, b, h]``; otherwise the whole ``[b, s, h]`` on every rank.
    """

    def __init__(
        self,
        rows: int,
        dim: int,
        *,
        partition: TensorParallelPartition,
        reduce_scatter: bool,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(rows, dim, device=device, dtype=dtype)
        self.partition = partition
        self.reduce_scatter = reduce_scatter
        self.vocab_start, self.vocab_end = vocab_range(
            rows * partition.size, partition.rank, partition.size
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        outside = (ids < self.vocab_start) | (ids >= self.vocab_end)
        local = (ids - self.vocab_start).masked_fill(outside, 0)
        partial = F.embedding(local, self.weight).masked_fill(outside.unsqueeze(-1), 0.0)
        if self.reduce_scatter:
            return _reduce_scatter_sequence(
                partial.transpose(0, 1).contiguous(), self.partition.group
            )
        return _reduce(partial, self.partition.group)


class VocabParallelOutputLayer(OutputLayer):
    """Logits of this rank's vocabulary range; the hidden state enters the region first."""

    def __init__(self, *args, partition: TensorParallelPartition, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.partition = partition

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(enter_region(hidden, self.partition), weight)

    def gather_vocab(self, logits: torch.Tensor) -> torch.Tensor:
        return _gather_vocab(logits, self.partition.group)


def vocab_parallel_loss(
    partition: TensorParallelPartition,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-token cross-entropy from this rank's logits ``[s, b, V/tp]`` and targets ``[s, b]``."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _vocab_parallel_cross_entropy(logits, target, partition.group)

    return loss


class ContextParallelAttention(torch.nn.Module):
    """Exact causal attention of this rank's two sequence chunks against the whole sequence,
    exchanging keys and values over the context-parallel group (``--cp-comm-type``).

    Takes and returns the core-attention layout: q ``[s, b, nh, d]``, k/v ``[s, b, ng, d]``
    -> ``[s, b, nh * d]``. Only the causal mask exists here (the original's CP attention in
    Transformer Engine has no arbitrary masks either); dropout is refused.
    """

    def __init__(
        self,
        context: ContextParallelPartition,
        *,
        layer_number: int,
        kv_channels: int,
        attention_dropout: float,
        softmax_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.context = context
        self.comm_type = context.comm_type(layer_number)
        self.softmax_scale = softmax_scale or kv_channels**-0.5
        self.attention_dropout = attention_dropout

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError(
                "--context-parallel-size > 1 supports the causal mask only; drop "
                "--reset-attention-mask (its per-document masks do not split over CP ranks)"
            )
        sq, b, heads, dim = query.shape
        out = _context_parallel_attention(
            query.permute(1, 2, 0, 3).contiguous(),
            key.permute(1, 2, 0, 3).contiguous(),
            value.permute(1, 2, 0, 3).contiguous(),
            self.context.groups,
            self.comm_type,
            self.softmax_scale,
            self.attention_dropout if self.training else 0.0,
        )  # [b, nh, s, d]
        return out.permute(2, 0, 1, 3).reshape(sq, b, heads * dim)
