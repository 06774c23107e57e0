"""``wrap_data_parallel``: the model and its optimizer for one sharding strategy.

The optimizer is built the way ``build_optimizer`` builds it (same param groups, Adam/SGD, loss
scaler), then sharded as the strategy says: the distributed optimizers take over its inner torch
optimizer; under FSDP2 it runs on the DTensor parameters with shard-aware statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from gpt_parallel.collectives import ProcessGroup, group_size
from gpt_parallel.ddp.config import DDPConfig
from gpt_parallel.ddp.data_parallel import DistributedDataParallel, broadcast_from_first_rank
from gpt_parallel.ddp.distributed_optimizer import DistributedOptimizer
from gpt_parallel.fsdp.data_parallel import DataParallel, DDPDataParallel, FSDP2DataParallel
from gpt_parallel.fsdp.dtensor_optimizer import ShardedStatsOptimizer
from gpt_parallel.fsdp.strategy import check_strategy, fsdp2_excludes_distributed_optimizer
from gpt_parallel.fsdp.torch_fsdp2 import apply_torch_fsdp2
from gpt_parallel.fsdp.zero2 import Zero2Optimizer
from gpt_parallel.optim.builder import build_distributed_optimizer, build_optimizer
from gpt_parallel.optim_config import OptimizerConfig
from gpt_parallel.precision_config import PrecisionConfig
from gpt_parallel.schedule_config import LearningRateConfig

# build_optimizer's keywords that the distributed optimizers take too.
_SHARED_KEYS = ("kind", "log_num_zeros_in_grad", "tp_rank")


def wrap_data_parallel(
    model: torch.nn.Module,
    strategy: str,
    dp_group: ProcessGroup | None,
    *,
    optimizer_config: OptimizerConfig,
    learning_rate: LearningRateConfig,
    precision: PrecisionConfig | None = None,
    ddp_config: DDPConfig | None = None,
    reshard_after_forward: bool = True,
    grad_stats_group: ProcessGroup | None = None,
    dp_stats_group: ProcessGroup | None = None,
    **optimizer_kwargs: Any,
) -> DataParallel:
    """Wrap ``model`` (on its device, the same weights on every DP rank) for ``strategy``.

    ``grad_stats_group`` is the model-parallel group the plain optimizer reduces statistics over
    (None: no model parallelism); ``dp_stats_group`` the data- and model-parallel ranks that the
    distributed optimizers reduce over (default ``dp_group`` without model parallelism).
    ``ddp_config`` sets the buffers of the DDP strategies (its ``use_distributed_optimizer`` is
    set from the strategy); ``reshard_after_forward`` is FSDP2's. ``optimizer_kwargs`` go to
    ``build_optimizer`` (``kind``, ``log_num_zeros_in_grad``, ``tp_rank``, ...).
    """
    check_strategy(strategy)
    ddp_config = ddp_config or DDPConfig()
    common = dict(grad_stats_group=grad_stats_group, **optimizer_kwargs)
    if strategy == "optim_grads_params":
        fsdp2_excludes_distributed_optimizer(ddp_config.use_distributed_optimizer)
        broadcast_from_first_rank(model, dp_group)
        apply_torch_fsdp2(model, dp_group, reshard_after_forward=reshard_after_forward)
        plain = build_optimizer(
            model.named_parameters(), optimizer_config, learning_rate, precision, **common
        )
        return FSDP2DataParallel(model, ShardedStatsOptimizer(plain, dp_group))

    sharded = strategy != "no_shard"
    config = dataclasses.replace(ddp_config, use_distributed_optimizer=sharded)
    ddp = DistributedDataParallel(model, config, dp_group)
    ddp.broadcast_params()
    if not sharded:
        optimizer: Any = build_optimizer(
            model.named_parameters(), optimizer_config, learning_rate, precision, **common
        )
        return DDPDataParallel(strategy, model, ddp, optimizer)
    optimizer = build_distributed_optimizer(
        ddp,
        optimizer_config,
        learning_rate,
        precision,
        grad_stats_group=_dp_stats_group(strategy, dp_group, grad_stats_group, dp_stats_group),
        optimizer_class=Zero2Optimizer if strategy == "optim_grads" else DistributedOptimizer,
        **{k: v for k, v in optimizer_kwargs.items() if k in _SHARED_KEYS},
    )
    return DDPDataParallel(strategy, model, ddp, optimizer)


def _dp_stats_group(
    strategy: str,
    dp_group: ProcessGroup | None,
    grad_stats_group: ProcessGroup | None,
    dp_stats_group: ProcessGroup | None,
) -> ProcessGroup | None:
    if dp_stats_group is not None:
        return dp_stats_group
    if group_size(grad_stats_group) > 1:
        raise ValueError(
            f"--data-parallel-sharding-strategy {strategy} with model parallelism needs"
            " dp_stats_group (the data- and model-parallel ranks) for its grad norm"
        )
    return dp_group
