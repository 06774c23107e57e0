"""The output layer's GEMM, writing the logits into memory kept between training steps.

The logits are the model's largest activation (tokens x padded vocab: 125 MB for 1024 tokens
and 32000 columns). glibc returns blocks that large to the OS when they are freed, so a fresh
one each step page-faults all over again: measured ~40 ms of a ~760 ms training step on a
2-core VM (4 layers, hidden 256, 1024 tokens, vocab 32000), about the whole loss computation.
On CPU in fp32 training the logits are therefore written into a buffer taken from
the output layer's ``LogitsPool`` (one per provider); the unfused loss computes in place there (as the original does), hands its
gradient back in the same memory, and the GEMM's backward returns the buffer to the pool. A
gradient that arrives in other memory (another loss) leaves the buffer to the garbage
collector; several graphs alive at once (pipelining) each take their own buffer. As the loss
overwrites the logits anyway, nothing may keep them (or a gradient retained on them) past the
backward pass.
"""

from __future__ import annotations

from typing import Any

import torch

from gpt_models.kernels import matmul


class LogitsPool:
    """Free logits buffers by shape, dtype and device; at most ``max_free`` of each kept."""

    def __init__(self, max_free: int = 2) -> None:
        self.max_free = max_free
        self._free: dict[tuple, list[torch.Tensor]] = {}

    @staticmethod
    def _key(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> tuple:
        return (tuple(shape), dtype, str(device))

    def take(
        self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """A free buffer of this kind, or a new one."""
        free = self._free.get(self._key(shape, dtype, device))
        if free:
            return free.pop()
        return torch.empty(shape, dtype=dtype, device=device)

    def give_back(self, buffer: torch.Tensor) -> None:
        """Keep ``buffer`` for a later ``take`` (nothing may use it any more)."""
        free = self._free.setdefault(self._key(buffer.shape, buffer.dtype, buffer.device), [])
        if len(free) < self.max_free:
            free.append(buffer)

    def clear(self) -> None:
        """Release every kept buffer."""
        self._free.clear()

    def __len__(self) -> int:
        return sum(len(free) for free in self._free.values())


class _PooledLinear(torch.autograd.Function):
    """x [N, h] @ weight.T into a pooled [N, V] buffer; the backward returns the buffer when
    the gradient comes back in it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, pool: LogitsPool) -> torch.Tensor:
        out = pool.take((x.shape[0], weight.shape[0]), x.dtype, x.device)
        torch.mm(x, weight.t(), out=out)
        ctx.save_for_backward(x, weight)
        ctx.pool = pool
        ctx.out = out  # alive until the backward pass, so its address identifies it
        return out

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_weight = grad.t() @ x if ctx.needs_input_grad[1] else None
        out, ctx.out = ctx.out, None
        if grad.data_ptr() == out.data_ptr() and grad.shape == out.shape:
            ctx.pool.give_back(out)  # the loss computed its gradient in our buffer
        return grad_x, grad_weight, None


def output_logits(
    hidden: torch.Tensor, weight: torch.Tensor, pool: LogitsPool | None = None
) -> torch.Tensor:
    """``hidden`` [..., h] @ ``weight``.T -> logits [..., V] (in ``pool``'s memory where it
    helps; None: always a fresh tensor)."""
    pooled = (
        pool is not None
        and hidden.device.type == "cpu"
        and hidden.dtype == weight.dtype == torch.float32
        and torch.is_grad_enabled()
        and (hidden.requires_grad or weight.requires_grad)
        and not torch.compiler.is_compiling()
    )
    if not pooled:
        return matmul.linear(hidden, weight)
    flat = hidden.reshape(-1, hidden.shape[-1])
    return _PooledLinear.apply(flat, weight, pool).view(*hidden.shape[:-1], weight.shape[0])
