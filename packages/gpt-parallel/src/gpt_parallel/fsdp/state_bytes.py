"""Bytes of optimizer state a rank holds: what the sharding strategies exist to shrink."""

from __future__ import annotations

from typing import Any

import torch

from gpt_parallel.fsdp.dtensor_optimizer import local_shard


def _nbytes(tensor: torch.Tensor) -> int:
    local = local_shard(tensor)
    return local.numel() * local.element_size()


def optimizer_state_bytes(optimizer: Any) -> int:
    """The inner torch optimizer's tensors (Adam moments; not ``step``), plus fp32 main params
    that are copies of bf16/fp16 model params, counting only this rank's shard of a DTensor.

    Works for ``FP32Optimizer``, ``Float16OptimizerWithFloat16Params``, the distributed
    optimizers and ``ShardedStatsOptimizer``.
    """
    inner = getattr(optimizer, "inner", optimizer)
    moments = sum(
        _nbytes(value)
        for state in inner.optimizer.state.values()
        for key, value in state.items()
        if torch.is_tensor(value) and key != "step"
    )
    copies = 0
    if hasattr(inner, "fp32_from_float16_groups"):
        copies = sum(_nbytes(p) for group in inner.fp32_from_float16_groups for p in group)
    elif hasattr(inner, "pieces"):
        copies = sum(
            _nbytes(main)
            for main, piece in zip(inner.main_params, inner.pieces, strict=True)
            if piece.param.dtype != torch.float32
        )
    return moments + copies
