"""Gradient accumulation in fp32 for fp16/bf16 parameters.

The original's DDP keeps a gradient buffer in fp32 when `--accumulate-allreduce-grads-in-fp32` is
set (it forces it for `--bf16`): each micro-batch's gradient is added to the parameter's fp32
`main_grad` as soon as backward produces it, so summing many micro-batches loses no precision.
Without this, the low-precision `.grad` itself would hold the running sum.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class FP32GradAccumulator:
    """Moves each low-precision gradient into an fp32 `main_grad` right after it is accumulated.

    The mixed-precision optimizer reads `main_grad` in place of `.grad`; call `zero()` before each
    iteration's first micro-batch.
    """

    def __init__(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        self.params = [
            p for p in parameters if p.requires_grad and p.dtype in (torch.float16, torch.bfloat16)
        ]
        self._handles = [
            p.register_post_accumulate_grad_hook(self._accumulate) for p in self.params
        ]
        self.zero()

    @staticmethod
    def _accumulate(param: torch.Tensor) -> None:
        grad = param.grad
        if grad is None:
            return
        if param.main_grad is None:
            param.main_grad = grad.float()
        else:
            param.main_grad.add_(grad)
        param.grad = None

    def zero(self) -> None:
        for param in self.params:
            param.main_grad = None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
