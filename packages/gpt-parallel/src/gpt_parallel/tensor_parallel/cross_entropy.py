"""Cross-entropy over a vocabulary split across the tensor-parallel ranks.

Why: the output layer is column-parallel, so each rank holds the logits of its own vocabulary
range ``[r * V/tp, (r + 1) * V/tp)`` and no rank ever holds ``[tokens, V]``. The loss needs only
three per-token numbers from the other ranks, each one all-reduce of a ``[tokens]`` tensor
(the original's algorithm, Megatron's ``tensor_parallel/cross_entropy.py``):

1. the row max (MAX), subtracted for a stable exponential;
2. the target's logit (SUM): the rank whose range holds the target contributes it, the others 0;
3. the sum of the exponentials (SUM).

loss = log(sum_exp) - target_logit. The backward needs no communication: the gradient on the
local shard is ``softmax - one_hot(target)``, and the softmax is kept from the forward.

Half-precision logits are computed in fp32, as in the original; fp32 and float64 logits are
computed in their own precision (float64 gives exact references in tests).
"""

from __future__ import annotations

from typing import Any

import torch

from gpt_parallel.collectives import ProcessGroup, group_rank, group_size
from gpt_parallel.tensor_parallel.comm import all_reduce_in_place


def vocab_range(global_vocab: int, rank: int, world: int) -> tuple[int, int]:
    """``[start, end)`` of the vocabulary rows that tensor-parallel ``rank`` of ``world`` holds."""
    if global_vocab % world:
        raise ValueError(
            f"vocabulary size {global_vocab} does not split over {world} tensor-parallel ranks; "
            "pad it with --make-vocab-size-divisible-by"
        )
    per_rank = global_vocab // world
    return rank * per_rank, (rank + 1) * per_rank


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _smoothing(label_smoothing: float, shard_vocab: int) -> float:
    """The original's weight of the uniform term: ``alpha * K / (K - 1)`` puts ``alpha`` on
    the non-target classes (NeMo's convention), with ``K`` this rank's shard of the vocabulary."""
    return label_smoothing * shard_vocab / (shard_vocab - 1)


class _VocabParallelCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        group: ProcessGroup | None,
        label_smoothing: float,
    ) -> torch.Tensor:
        shard_vocab = logits.shape[-1]
        tp = group_size(group)
        start, end = vocab_range(shard_vocab * tp, group_rank(group), tp)
        values = logits.to(_compute_dtype(logits.dtype))
        row_max = values.amax(dim=-1)
        all_reduce_in_place(row_max, group, "max")
        # A new buffer (the caller's logits are not modified); it becomes exp, then the softmax.
        shifted = values - row_max.unsqueeze(-1)

        outside = (target < start) | (target >= end)
        local_target = (target - start).masked_fill(outside, 0)
        predicted = shifted.gather(-1, local_target.unsqueeze(-1)).squeeze(-1)
        predicted = predicted.masked_fill(outside, 0.0)
        all_reduce_in_place(predicted, group, "sum")

        exp = shifted.exp_()
        sum_exp = exp.sum(dim=-1)
        all_reduce_in_place(sum_exp, group, "sum")
        loss = torch.log(sum_exp) - predicted
        softmax = exp.div_(sum_exp.unsqueeze(-1))

        if label_smoothing > 0:
            # As the original: the uniform term averages this rank's shard only.
            smoothing = _smoothing(label_smoothing, shard_vocab)
            loss = (1.0 - smoothing) * loss - smoothing * torch.log(softmax).mean(dim=-1)

        ctx.save_for_backward(softmax, local_target, outside)
        ctx.label_smoothing = label_smoothing
        ctx.input_dtype = logits.dtype
        ctx.backward_done = False
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        if ctx.backward_done:
            raise RuntimeError(
                "vocab_parallel_cross_entropy: backward may run only once (its softmax buffer "
                "becomes the gradient); do not use retain_graph through it"
            )
        ctx.backward_done = True
        softmax, local_target, outside = ctx.saved_tensors
        grad = softmax  # reused in place: saves a [tokens, V/tp] buffer, as the original does
        shard_vocab = grad.shape[-1]
        target_weight = (~outside).to(grad.dtype)
        smoothing = 0.0
        if ctx.label_smoothing > 0:
            smoothing = _smoothing(ctx.label_smoothing, shard_vocab)
            target_weight = target_weight * (1.0 - smoothing)
        grad.scatter_add_(-1, local_target.unsqueeze(-1), -target_weight.unsqueeze(-1))
        if smoothing:
            grad.sub_(smoothing / shard_vocab)
        grad.mul_(grad_loss.to(grad.dtype).unsqueeze(-1))
        return grad.to(ctx.input_dtype), None, None, None


def vocab_parallel_cross_entropy(
    logits_shard: torch.Tensor,
    target: torch.Tensor,
    group: ProcessGroup | None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Per-token loss from this rank's logits ``[..., V/tp]`` and global targets ``[...]``.

    Rank ``r`` of ``group`` holds vocabulary rows ``vocab_range(V, r, tp)``; every rank gets
    the same loss (in fp32, or float64 for float64 logits). ``label_smoothing`` follows the
    original, whose smoothing term under tensor parallelism averages the local shard only.
    """
    if target.shape != logits_shard.shape[:-1]:
        raise ValueError(
            f"target shape {tuple(target.shape)} must be the logits' shape without the "
            f"vocabulary dim, {tuple(logits_shard.shape[:-1])}"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if label_smoothing > 0 and logits_shard.shape[-1] < 2:
        raise ValueError(
            "label_smoothing needs at least 2 vocabulary rows per tensor-parallel rank"
        )
    return _VocabParallelCrossEntropy.apply(logits_shard, target, group, label_smoothing)
