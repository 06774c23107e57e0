"""``DistributedDataParallel``: the original's DDP wrapper over the flat gradient buffers.

Why not torch's DDP: the original reduces into ``main_grad`` buffers that the optimizers read
(fp32 accumulation for bf16 models, reduce-scatter into shards for the distributed optimizer),
with its own bucket layout and averaging rules, and the training loop drives the reduction
explicitly (``finish_grad_sync`` after the last micro-batch), which torch's DDP does not offer.

Usage per iteration: ``zero_grad_buffer()``; forward/backward for each micro-batch, all but the
last under ``no_sync()``; ``finish_grad_sync()``; the optimizer step; with the distributed
optimizer and no ``overlap_param_gather``, the optimizer calls ``start_param_sync()``. With
``overlap_param_gather`` the forward pre-hooks gather each bucket before its first use, and with
``overlap_param_gather_with_optimizer_step`` too the optimizer launches every bucket's gather
at the end of its step (``start_param_sync(force_dispatch=True)``) and the hooks only wait.

With ``num_distributed_optimizer_instances`` N > 1 the buffers are laid out and sharded over
the instance's part of the data-parallel group (``intra_instance_group``, dp*cp/N ranks) and
each reduced shard is all-reduced across instances (``inter_instance_group``); ``dp_group``
stays the whole data-parallel group (the 1/dp scaling, ``broadcast_params``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from gpt_parallel.collectives import ProcessGroup, group_size
from gpt_parallel.ddp.bucket_sync import BucketSync
from gpt_parallel.ddp.buffer import ParamAndGradBuffer
from gpt_parallel.ddp.config import DDPConfig


def _group_by_dtype(
    params: list[torch.nn.Parameter], grad_reduce_in_fp32: bool
) -> dict[tuple[torch.dtype, torch.dtype], list[torch.nn.Parameter]]:
    groups: dict[tuple[torch.dtype, torch.dtype], list[torch.nn.Parameter]] = {}
    for param in params:
        grad_dtype = torch.float32 if grad_reduce_in_fp32 else param.dtype
        groups.setdefault((param.dtype, grad_dtype), []).append(param)
    return groups


class DistributedDataParallel(torch.nn.Module):
    """Wrap ``module``; its trainable parameters get ``main_grad`` views into flat buffers.

    ``dp_group`` None means one data-parallel rank (everything still works, nothing is sent).
    ``disable_bucketing`` forces one bucket per buffer (the original does this for model
    chunks after the first). ``intra_instance_group`` and ``inter_instance_group`` are needed
    with several distributed-optimizer instances (see the module doc) and ignored otherwise.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        config: DDPConfig,
        dp_group: ProcessGroup | None,
        *,
        disable_bucketing: bool = False,
        intra_instance_group: ProcessGroup | None = None,
        inter_instance_group: ProcessGroup | None = None,
        expert_dp_group: ProcessGroup | None = None,
    ) -> None:
        super().__init__()
        self.module = module
        self.config = config
        self.dp_group = dp_group
        self.expert_dp_group = expert_dp_group
        self.shard_group, self.inter_group = _instance_groups(
            config, dp_group, intra_instance_group, inter_instance_group
        )
        dp_size = group_size(dp_group)
        # The original sizes the default bucket by the whole DP group and pads by the shard group.
        self.bucket_size = config.effective_bucket_size(dp_size, disable_bucketing)
        scaling = 1.0 if config.average_in_collective else 1.0 / dp_size
        params = [p for p in module.parameters() if p.requires_grad]
        dense = [p for p in params if getattr(p, "allreduce", True)]
        experts = [p for p in params if not getattr(p, "allreduce", True)]
        self.grad_buffers: list[ParamAndGradBuffer] = [
            ParamAndGradBuffer(
                group, grad_dtype, config, self.shard_group, self.bucket_size, scaling
            )
            for (_, grad_dtype), group in _group_by_dtype(dense, config.grad_reduce_in_fp32).items()
        ]
        # Experts (``allreduce=False``) hold different weights on each expert-parallel rank:
        # their gradients are reduced over the expert-data-parallel group only, still scaled
        # by the whole data-parallel size as the original does (its expert scaling factor).
        expert_scaling = (
            group_size(expert_dp_group) / dp_size if config.average_in_collective else 1.0 / dp_size
        )
        self.grad_buffers += [
            ParamAndGradBuffer(
                group, grad_dtype, config, expert_dp_group, self.bucket_size, expert_scaling
            )
            for (_, grad_dtype), group in _group_by_dtype(
                experts, config.grad_reduce_in_fp32
            ).items()
        ]
        self.bucket_syncs = [
            BucketSync(
                bucket,
                config,
                buf.dp_group,
                self.inter_group if buf.dp_group is self.shard_group else None,
            )
            for buf in self.grad_buffers
            for bucket in buf.buckets
        ]
        # Set by a distributed optimizer that launches the gathers itself at the end of its
        # step (the original's ``overlap_param_gather_with_optimizer_step`` attribute).
        self.param_gather_dispatched_by_optimizer = False
        self.param_to_sync = {p: s for s in self.bucket_syncs for p in s.bucket.params}
        # Buckets run from the last layer to the first, so forward needs bucket i-1 after i.
        for later, earlier in zip(self.bucket_syncs[1:], self.bucket_syncs[:-1], strict=True):
            later.next_param_gather = earlier
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_hook) for p in params]
        self._param_gather_hooks: list[Any] = []
        if config.overlap_param_gather:
            self.enable_forward_pre_hook()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def _grad_hook(self, param: torch.nn.Parameter) -> None:
        """Move the fresh ``.grad`` into ``main_grad`` and free it; mark the param ready."""
        if param.grad is not None and not getattr(param, "grad_added_to_main_grad", False):
            param.main_grad.add_(param.grad)
        param.grad = None
        if self.config.overlap_grad_reduce:
            self.param_to_sync[param].register_grad_ready(param)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients without reducing them (every micro-batch but the last)."""
        for sync in self.bucket_syncs:
            sync.is_last_microbatch = False
        try:
            yield
        finally:
            for sync in self.bucket_syncs:
                sync.is_last_microbatch = True

    def start_grad_sync(self) -> None:
        """Launch every bucket's reduction now (without overlap this also completes it)."""
        for sync in self.bucket_syncs:
            sync.start_grad_sync()

    def finish_grad_sync(self) -> None:
        """Make every bucket's reduced gradient ready (after the last micro-batch's backward)."""
        for sync in self.bucket_syncs:
            sync.finish_grad_sync()

    def zero_grad_buffer(self) -> None:
        """Zero the gradient buffers and the per-bucket bookkeeping (start of an iteration)."""
        for param in self.param_to_sync:
            param.grad_added_to_main_grad = False
        for buf in self.grad_buffers:
            buf.reset()
        for sync in self.bucket_syncs:
            sync.reset()

    def start_param_sync(self, force_sync: bool = False, force_dispatch: bool = False) -> None:
        """All-gather the updated params of every bucket (distributed optimizer).

        When the optimizer dispatches the gathers (``param_gather_dispatched_by_optimizer``) a
        plain call does nothing; the optimizer's own call passes ``force_dispatch``.
        """
        if not force_sync and self.param_gather_dispatched_by_optimizer and not force_dispatch:
            return
        for sync in self.bucket_syncs:
            sync.start_param_sync(force_sync=force_sync)

    def _forward_pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        for param in module.parameters(recurse=False):
            sync = self.param_to_sync.get(param)
            if sync is not None:
                sync.finish_param_sync()

    def enable_forward_pre_hook(self) -> None:
        """Wait for each bucket's gather just before a module first uses its params."""
        if not self._param_gather_hooks:
            self._param_gather_hooks = [
                m.register_forward_pre_hook(self._forward_pre_hook) for m in self.module.modules()
            ]

    def disable_forward_pre_hook(self) -> None:
        """Remove the hooks and finish every gather now (before checkpoints, hash checks)."""
        for handle in self._param_gather_hooks:
            handle.remove()
        self._param_gather_hooks = []
        self.start_param_sync(force_sync=True)

    def broadcast_params(self) -> None:
        """Copy DP rank 0's parameters to every replica (unless ``--data-parallel-random-init``)."""
        broadcast_from_first_rank(self.module, self.dp_group)


@torch.no_grad()
def broadcast_from_first_rank(module: torch.nn.Module, group: ProcessGroup | None) -> None:
    """``group``'s first rank's parameters on every rank of it (nothing for one rank)."""
    if group_size(group) == 1:
        return
    src = dist.get_global_rank(group, 0)
    for param in module.parameters():
        dist.broadcast(param.data, src=src, group=group)


def _instance_groups(
    config: DDPConfig,
    dp_group: ProcessGroup | None,
    intra: ProcessGroup | None,
    inter: ProcessGroup | None,
) -> tuple[ProcessGroup | None, ProcessGroup | None]:
    """The group the buffers are sharded and reduce-scattered over, and the one across
    instances (None with one instance), after checking they split ``dp_group``."""
    instances = config.num_distributed_optimizer_instances
    if instances == 1:
        return dp_group, None
    if intra is None or inter is None:
        raise ValueError(
            "--num-distributed-optimizer-instances > 1 needs the intra-dp-cp and inter-dp-cp"
            " groups (ParallelState.group) passed to DistributedDataParallel"
        )
    sizes = (group_size(intra), group_size(inter), group_size(dp_group))
    if sizes[1] != instances or sizes[0] * sizes[1] != sizes[2]:
        raise ValueError(
            f"--num-distributed-optimizer-instances {instances}: the instance groups have "
            f"{sizes[0]} x {sizes[1]} ranks, expected {sizes[2] // instances} x {instances}"
        )
    return intra, inter
