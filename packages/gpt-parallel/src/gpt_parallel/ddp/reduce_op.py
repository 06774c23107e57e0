"""How a bucket's gradients are scaled and reduced: which op, and which multiplies around it.

The gradient must end up as the mean over the ``dp`` data-parallel (x context) ranks. Three
ways, chosen once per bucket:

- ``average_in_collective`` (``--ddp-average-in-collective``): ``ReduceOp.AVG`` where the
  backend has it (NCCL), else a sum and a ``1/dp`` multiply of the reduced region after;
- ``gradient_reduce_div_fusion`` (on unless ``--no-gradient-reduce-div-fusion``): the ``1/dp``
  is folded into the collective as NCCL's pre-multiplied sum (``ReduceOp.PREMUL_SUM``), which
  saves one pass over the bucket. As in the original's Megatron-FSDP
  (``gradient_reduce_preprocessing``) not for bf16 buffers, and only where the backend is NCCL
  (gloo has no PREMUL_SUM) and the group has more than one rank (with one rank no collective
  runs, so the multiply must happen anyway);
- otherwise: multiply by ``1/dp`` first, then sum.

Every path gives the same gradients up to rounding (a test checks the fused choice falls back
on gloo and matches). With several distributed-optimizer instances the reduce-scatter inside an
instance uses the op above and the all-reduce of the shard across instances is a sum (or AVG).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from gpt_parallel.collectives import ProcessGroup, group_size
from gpt_parallel.comm.flat import supports_avg
from gpt_parallel.ddp.config import DDPConfig


@dataclass(frozen=True)
class Reduction:
    """``pre_scale`` the bucket, reduce with ``op`` (across instances with ``inter_op``), then
    ``post_scale`` the reduced region; a scale of 1.0 means no multiply."""

    pre_scale: float
    op: dist.ReduceOp
    inter_op: dist.ReduceOp
    post_scale: float
    fused_division: bool


def supports_premul_sum(group: ProcessGroup | None, dtype: torch.dtype) -> bool:
    """Whether the 1/dp can ride in the collective: NCCL, more than one rank, not bf16."""
    return (
        group_size(group) > 1
        and dist.get_backend(group) == "nccl"
        and dtype != torch.bfloat16
        and hasattr(dist, "_make_nccl_premul_sum")
    )


def plan_reduction(
    config: DDPConfig,
    scaling_factor: float,
    grad_dtype: torch.dtype,
    group: ProcessGroup | None,
    inter_group: ProcessGroup | None = None,
) -> Reduction:
    """The reduction for a bucket scaled by ``scaling_factor`` (1 with average-in-collective)
    over ``group`` (the DP group, or the instance's part of it) and ``inter_group``."""
    total = group_size(group) * group_size(inter_group)
    if config.average_in_collective:
        native = supports_avg(group) and (inter_group is None or supports_avg(inter_group))
        if native:
            avg = dist.ReduceOp.AVG
            return Reduction(scaling_factor, avg, avg, 1.0, False)
        total_scale = 1.0 / total if total > 1 else 1.0
        return Reduction(scaling_factor, dist.ReduceOp.SUM, dist.ReduceOp.SUM, total_scale, False)
    fuse = (
        scaling_factor != 1.0
        and config.gradient_reduce_div_fusion
        and supports_premul_sum(group, grad_dtype)
    )
    if fuse:
        op = dist._make_nccl_premul_sum(scaling_factor)
        return Reduction(1.0, op, dist.ReduceOp.SUM, 1.0, True)
    return Reduction(scaling_factor, dist.ReduceOp.SUM, dist.ReduceOp.SUM, 1.0, False)
