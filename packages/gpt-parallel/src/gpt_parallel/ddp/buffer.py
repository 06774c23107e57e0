"""One flat gradient buffer (and, for the distributed optimizer, a flat param buffer) per dtype.

Why flat: a bucket's gradients are one contiguous tensor, so reducing it is one collective, and
the distributed optimizer's shard of a bucket is a plain slice. Every parameter's ``main_grad``
is a view into ``grad_data``; with the distributed optimizer its ``.data`` becomes a view into
``param_data`` too, so the all-gather of updated shards writes straight into the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gpt_parallel.collectives import ProcessGroup, group_size
from gpt_parallel.ddp.config import DDPConfig
from gpt_parallel.ddp.layout import BufferLayout, ParamSlot, plan_buffer


@dataclass(frozen=True, eq=False)
class Bucket:
    """Consecutive parameters reduced by one collective: ``[start, end)`` of the buffer."""

    index: int
    params: tuple[torch.nn.Parameter, ...]
    start: int
    end: int
    numel_unpadded: int
    grad_data: torch.Tensor
    param_data: torch.Tensor | None
    gradient_scaling_factor: float


class ParamAndGradBuffer:
    """The buffer for the trainable parameters of one (param dtype, grad dtype) pair.

    ``params`` come in registration order; they are laid out reversed (see ``layout``).
    ``param_index`` maps each parameter to its ``ParamSlot``.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        grad_dtype: torch.dtype,
        config: DDPConfig,
        dp_group: ProcessGroup | None,
        bucket_size: int | None,
        gradient_scaling_factor: float,
    ) -> None:
        if not params:
            raise ValueError("a gradient buffer needs at least one parameter")
        self.param_dtype = params[0].dtype
        self.grad_dtype = grad_dtype
        self.dp_group = dp_group
        order = params[::-1]
        self.layout: BufferLayout = plan_buffer(
            [p.numel() for p in order],
            bucket_size=bucket_size,
            dp_size=group_size(dp_group),
            use_distributed_optimizer=config.use_distributed_optimizer,
            pad_for_high_nccl_busbw=config.pad_buckets_for_high_nccl_busbw,
            starts_new_bucket=[bool(getattr(p, "shared_embedding", False)) for p in order],
        )
        device = params[0].device
        self.grad_data = torch.zeros(self.layout.numel, dtype=grad_dtype, device=device)
        self.param_data: torch.Tensor | None = None
        if config.use_distributed_optimizer:
            self.param_data = torch.zeros(self.layout.numel, dtype=self.param_dtype, device=device)
        self.param_index: dict[torch.nn.Parameter, ParamSlot] = {}
        for param, slot in zip(order, self.layout.slots, strict=True):
            self._place(param, slot)
        self.buckets = self._make_buckets(order, gradient_scaling_factor)

    def _place(self, param: torch.nn.Parameter, slot: ParamSlot) -> None:
        self.param_index[param] = slot
        if self.param_data is not None:
            view = self.param_data[slot.start : slot.end].view(param.shape)
            view.copy_(param.data)
            param.data = view
        param.main_grad = self.grad_data[slot.start : slot.end].view(param.shape)

    def _make_buckets(self, order: list[torch.nn.Parameter], scaling: float) -> tuple[Bucket, ...]:
        buckets = []
        for index, (start, end) in enumerate(self.layout.buckets):
            members = tuple(p for p in order if self.param_index[p].bucket == index)
            last = self.param_index[members[-1]].end
            param_data = None if self.param_data is None else self.param_data[start:end]
            buckets.append(
                Bucket(
                    index,
                    members,
                    start,
                    end,
                    last - start,
                    self.grad_data[start:end],
                    param_data,
                    scaling,
                )
            )
        return tuple(buckets)

    def reset(self) -> None:
        """Zero the gradients (the start of every iteration)."""
        self.grad_data.zero_()
