"""The optimizer wrappers over FSDP2's ``DTensor`` parameters: statistics from the local shards.

``FP32Optimizer`` and ``Float16OptimizerWithFloat16Params`` already work on ``DTensor``
parameters (the inner torch optimizer and the fp32 main copies are element-wise), except for the
statistics: their norms and zero counts sum over ``grad_stats_group`` (the model-parallel group)
because they assume each data-parallel rank holds the whole gradient. Under FSDP2 each rank
holds 1/dp of it, so ``ShardedStatsOptimizer`` computes the statistics from the local shards,
sums them over the data-parallel group, then over ``grad_stats_group`` as before, and clips the
local shards; the fp16 inf/NaN check is reduced over both groups the same way (else one rank
could skip a step the others take). Everything else is the wrapped optimizer's. No change to ``gpt_parallel.optim``.
"""

from __future__ import annotations

from typing import Any

import torch

from gpt_parallel.collectives import ProcessGroup, all_reduce_
from gpt_parallel.optim.clip_grads import (
    clip_grads_by_total_norm,
    count_zeros,
    counts_for_params_norm,
    l2_norm,
)
from gpt_parallel.optim.optimizer import MegatronOptimizer


def is_dtensor(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (sharded by FSDP2)."""
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def local_shard(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a ``DTensor``; a plain tensor is returned as it is."""
    return tensor.to_local() if is_dtensor(tensor) else tensor


def sharded_l2_norm(
    tensors: list[torch.Tensor], dp_group: ProcessGroup | None, group: ProcessGroup | None
) -> float:
    """L2 norm of sharded ``tensors``: local squares summed over ``dp_group``, then ``group``."""
    local = [local_shard(t) for t in tensors]
    dp_norm = l2_norm(local, dp_group)
    return l2_norm([torch.tensor([dp_norm], device=_device_of(local))], group)


def _device_of(tensors: list[torch.Tensor]) -> torch.device:
    """Where a statistic is reduced: the tensors' device (NCCL needs CUDA), else the CPU."""
    return tensors[0].device if tensors else torch.device("cpu")


class ShardedStatsOptimizer:
    """Wrap a ``MegatronOptimizer`` built over FSDP2 parameters (see the module doc).

    Attributes not defined here (``param_groups``, ``state_dict``, ``zero_grad``, ``scale_loss``,
    ``get_loss_scale``, ``fp16``, ...) are the wrapped optimizer's.
    """

    def __init__(self, optimizer: MegatronOptimizer, dp_group: ProcessGroup | None) -> None:
        self.inner = optimizer
        self.dp_group = dp_group

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _local_grads(self) -> list[torch.Tensor]:
        return [local_shard(p.grad) for p in self.inner.get_parameters() if p.grad is not None]

    def get_grad_norm(self) -> float:
        """The whole model's gradient norm (over the data-parallel and ``grad_stats_group``)."""
        grads = self.inner.grads_for_norm()
        return sharded_l2_norm(grads, self.dp_group, self.inner.grad_stats_group)

    def clip_grad_norm(self, clip_grad: float) -> float:
        """The global norm; every local shard is scaled by ``clip/(norm+1e-6)`` when below 1."""
        grad_norm = self.get_grad_norm()
        clip_grads_by_total_norm(self._local_grads(), clip_grad, grad_norm)
        return grad_norm

    def count_zeros(self) -> int:
        local = [local_shard(g) for g in self.inner.grads_for_norm()]
        zeros = count_zeros(local, self.dp_group)
        total = torch.tensor([zeros], dtype=torch.int64, device=_device_of(local))
        return int(all_reduce_(total, self.inner.grad_stats_group, "sum").item())

    def params_norm(self) -> float:
        counts = counts_for_params_norm(self.inner.tp_rank)
        params = self.inner.get_parameters()
        data = [p.detach() for p in params if counts(self.inner.model_param_of(p))]
        return sharded_l2_norm(data, self.dp_group, self.inner.grad_stats_group)

    @torch.no_grad()
    def prepare_grads(self) -> bool:
        """The wrapped optimizer's, but with a loss scaler the inf/NaN check of the local shards
        is reduced over the data-parallel group too, so every rank skips the same steps."""
        inner = self.inner
        scaler = getattr(inner, "grad_scaler", None)
        if scaler is None:
            return inner.prepare_grads()
        inner._copy_model_grads_to_main_grads()
        grads = self._local_grads()
        found_inf = torch.zeros(1, dtype=torch.float, device=_device_of(grads))
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(
                grads, found_inf, scaler.inv_scale.to(found_inf.device)
            )
        for group in (self.dp_group, inner.grad_stats_group):
            all_reduce_(found_inf, group, "max")
        overflow = found_inf.item() > 0
        scaler.update(overflow)
        return overflow

    @torch.no_grad()
    def step(self) -> tuple[bool, float | None, int | None]:
        """``MegatronOptimizer.step`` with these statistics: ``(stepped, grad_norm, zeros)``."""
        inner = self.inner
        if self.prepare_grads():
            return False, None, None
        grad_norm = inner._empty_norm
        if inner.clip_grad > 0.0:
            grad_norm = self.clip_grad_norm(inner.clip_grad)
        num_zeros = self.count_zeros() if inner.log_num_zeros_in_grad else inner._empty_zeros
        return inner.step_with_ready_grads(), grad_norm, num_zeros
