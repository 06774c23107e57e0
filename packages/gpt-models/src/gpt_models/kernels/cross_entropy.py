"""Per-token cross-entropy over the (padded) vocabulary.

Written as the original's vocab-parallel cross-entropy computes it on one shard: subtract the
row max, take the target logit, and return log(sum(exp)) - target. Every padded column takes
part in the softmax, as in the original.
"""

from __future__ import annotations

import torch

from gpt_models.kernels.compiled import Compiled


def cross_entropy_reference(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss per position: logits [..., V], integer target [...] -> [...] in logits' dtype."""
    logits_max = logits.max(dim=-1, keepdim=True).values
    shifted = logits - logits_max.detach()
    predicted = shifted.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    sum_exp = shifted.exp().sum(dim=-1)
    return torch.log(sum_exp) - predicted


cross_entropy_fused = Compiled(cross_entropy_reference, "cross_entropy")
