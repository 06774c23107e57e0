"""Per-token cross-entropy over the (padded) vocabulary.

Every variant computes what the original's vocab-parallel cross-entropy computes on one shard:
subtract the row max, take the target logit, and return log(sum(exp)) - target, with every
padded column taking part in the softmax.

- ``cross_entropy_reference`` (the plain path, ``--cross-entropy-loss-fusion`` off) is, like the
  original's, an autograd function with a hand-written backward: the forward keeps
  ``exp(logits - max)`` and the backward turns it into ``(softmax - onehot(target)) * grad`` in
  place. ``cross_entropy_inplace`` computes in the logits' own memory, as the original does
  (with ``kernels.logits`` the model's loss then allocates no [tokens, vocab] tensor at all).
- ``cross_entropy_formula`` is the formula as plain tensor operations, which the provider
  compiles (with the output layer) into one region where inductor fuses the max, exp, sum and
  gather.
"""

from __future__ import annotations

from typing import Any

import torch


def _loss_inplace(
    exp_logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn logits into exp(logits - max) in place; return (loss, sum of the exponentials)."""
    exp_logits.sub_(torch.amax(exp_logits, dim=-1, keepdim=True))
    predicted = exp_logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    sum_exp = exp_logits.exp_().sum(dim=-1)
    return torch.log(sum_exp) - predicted, sum_exp


def _softmax_grad_inplace(
    exp_logits: torch.Tensor, sum_exp: torch.Tensor, target: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """(softmax - onehot(target)) * grad, in the exponentials' memory (normalising and scaling
    in one pass). The graph cannot be run backward twice, as in the original."""
    grad = grad.to(exp_logits.dtype)
    out = exp_logits.mul_((grad / sum_exp).unsqueeze(-1))
    return out.scatter_add_(-1, target.unsqueeze(-1), -grad.unsqueeze(-1))


class _CrossEntropy(torch.autograd.Function):
    """The original's cross-entropy algorithm with its in-place softmax gradient."""

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, target: torch.Tensor, inplace: bool
    ) -> torch.Tensor:
        exp_logits = logits if inplace else logits.clone()
        loss, sum_exp = _loss_inplace(exp_logits, target)
        ctx.save_for_backward(exp_logits, sum_exp, target)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        exp_logits, sum_exp, target = ctx.saved_tensors
        return _softmax_grad_inplace(exp_logits, sum_exp, target, grad_loss), None, None


def cross_entropy_reference(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss per position: logits [..., V], integer target [...] -> [...] in logits' dtype."""
    return _CrossEntropy.apply(logits, target, False)


def cross_entropy_inplace(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``cross_entropy_reference`` that overwrites ``logits`` (which nothing else may read
    afterwards) with its exponentials instead of allocating a copy."""
    return _CrossEntropy.apply(logits, target, True)


def cross_entropy_formula(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The same loss as differentiable tensor operations, for the compiler to fuse."""
    logits_max = torch.amax(logits, dim=-1, keepdim=True)
    shifted = logits - logits_max.detach()
    predicted = shifted.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    sum_exp = shifted.exp().sum(dim=-1)
    return torch.log(sum_exp) - predicted
