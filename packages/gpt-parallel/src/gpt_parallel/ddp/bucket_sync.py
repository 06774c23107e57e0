"""The communication state of one bucket: its gradient reduction and its param all-gather.

The original's ``_ParamAndGradBucketGroup`` with one bucket per group. With
``overlap_grad_reduce`` the reduction launches (async) from the gradient hook of the bucket's
last parameter to become ready, during backward, and ``finish_grad_sync`` only waits; without
it, ``finish_grad_sync`` runs the collective synchronously. Inside ``no_sync`` (not the last
micro-batch) nothing launches and gradients keep accumulating in the buffer.

With several distributed-optimizer instances (``inter_group`` given) the reduce-scatter runs
inside the instance (``dp_group`` is then the instance's part of the data-parallel group) and
the reduced shard is then all-reduced across instances. That second collective needs the first
one's result, so it runs when the first completes (``finish_grad_sync``); the original chains
the two on a side CUDA stream instead, which orders them the same way.
"""

from __future__ import annotations

import torch

from gpt_parallel.collectives import ProcessGroup
from gpt_parallel.ddp.buffer import Bucket
from gpt_parallel.ddp.comm import (
    Handle,
    all_gather_flat,
    all_reduce_flat,
    reduce_scatter_flat,
    shard_of,
)
from gpt_parallel.ddp.config import DDPConfig
from gpt_parallel.ddp.reduce_op import plan_reduction


class BucketSync:
    """Launch, wait for and reset one bucket's collectives."""

    def __init__(
        self,
        bucket: Bucket,
        config: DDPConfig,
        dp_group: ProcessGroup | None,
        inter_group: ProcessGroup | None = None,
    ) -> None:
        self.bucket = bucket
        self.config = config
        self.dp_group = dp_group
        self.inter_group = inter_group
        self.params = set(bucket.params)
        self.params_with_grad: set[torch.nn.Parameter] = set()
        self.is_last_microbatch = True
        self.grad_handle: Handle = None
        self.grad_launched = False
        self.param_handle: Handle = None
        self.param_gather_dispatched = False
        self.next_param_gather: BucketSync | None = None
        self.reduction = plan_reduction(
            config,
            bucket.gradient_scaling_factor,
            bucket.grad_data.dtype,
            dp_group,
            inter_group,
        )

    def reset(self) -> None:
        """Forget which gradients arrived (the start of an iteration)."""
        self.is_last_microbatch = True
        self.params_with_grad = set()
        self.grad_launched = False

    def register_grad_ready(self, param: torch.nn.Parameter) -> None:
        """Called by a parameter's hook (overlap only); launches once every gradient is in."""
        if not self.is_last_microbatch:
            return
        if param in self.params_with_grad:
            raise RuntimeError(
                "a parameter produced two gradients in one backward with --overlap-grad-reduce;"
                " run earlier micro-batches under no_sync()"
            )
        self.params_with_grad.add(param)
        if len(self.params_with_grad) == len(self.params):
            self.start_grad_sync()

    def _reduced_region(self) -> torch.Tensor:
        grads = self.bucket.grad_data
        return shard_of(grads, self.dp_group) if self.config.use_distributed_optimizer else grads

    def start_grad_sync(self) -> None:
        """Scale, then launch the all-reduce (DDP) or reduce-scatter (distributed optimizer)."""
        if self.grad_handle is not None:
            raise RuntimeError("a bucket's gradient reduction was launched twice")
        grads = self.bucket.grad_data
        if self.config.check_for_nan_in_grad and not torch.isfinite(grads.norm()).item():
            raise RuntimeError(
                f"NaN or inf in gradient bucket {self.bucket.index} before the data-parallel"
                " reduction (--check-for-nan-in-loss-and-grad)"
            )
        if self.reduction.pre_scale != 1.0:
            grads.mul_(self.reduction.pre_scale)
        async_op = self.config.overlap_grad_reduce
        collective = (
            reduce_scatter_flat if self.config.use_distributed_optimizer else all_reduce_flat
        )
        self.grad_handle = collective(grads, self.dp_group, False, async_op, op=self.reduction.op)
        self.grad_launched = True
        if not async_op:
            self._complete_grad_sync()

    def _complete_grad_sync(self) -> None:
        if self.grad_handle is not None:
            self.grad_handle.wait()
            self.grad_handle = None
        if self.inter_group is not None:
            all_reduce_flat(
                self._reduced_region(), self.inter_group, False, False, op=self.reduction.inter_op
            )
        if self.reduction.post_scale != 1.0:
            self._reduced_region().mul_(self.reduction.post_scale)

    def finish_grad_sync(self) -> None:
        """Make the reduced gradients ready: wait (overlap) or reduce now (no overlap)."""
        self.param_gather_dispatched = False
        if not self.config.overlap_grad_reduce:
            self.start_grad_sync()
            return
        if not self.grad_launched:
            raise RuntimeError(
                f"gradient bucket {self.bucket.index} was never reduced: "
                f"{len(self.params_with_grad)}/{len(self.params)} of its parameters got a gradient"
                " (with --overlap-grad-reduce every trainable parameter needs one)"
            )
        self._complete_grad_sync()

    def start_param_sync(self, force_sync: bool = False) -> None:
        """All-gather the bucket's updated shards into every rank's params (dist. optimizer).

        The gather runs over ``dp_group`` only: with several instances each instance already
        holds the same reduced gradient, so each gathers its own identical update.
        """
        if force_sync and self.param_handle is not None:
            self.param_handle.wait()
            self.param_handle = None
            return
        if self.param_handle is not None:
            raise RuntimeError("a bucket's param all-gather was launched twice")
        async_op = self.config.overlap_param_gather and not force_sync
        self.param_handle = all_gather_flat(self.bucket.param_data, self.dp_group, async_op)
        self.param_gather_dispatched = True

    def finish_param_sync(self) -> None:
        """Wait for this bucket's gather (dispatching it if nobody has), then start the next."""
        if not self.param_gather_dispatched:
            self.start_param_sync()
        if self.param_handle is not None:
            self.param_handle.wait()
            self.param_handle = None
            nxt = self.next_param_gather
            if nxt is not None and not nxt.param_gather_dispatched:
                nxt.start_param_sync()
