"""Sharded data parallelism: ``--use-torch-fsdp2`` and ``--use-megatron-fsdp``'s strategies.

``torch_fsdp2`` applies torch's ``fully_shard`` per transformer layer and keeps our parameter
tags; ``dtensor_optimizer`` makes the optimizer wrappers' statistics shard-aware; ``zero2`` is
ZeRO-2 over the distributed optimizer; ``strategy`` maps the flags (and documents what each
strategy keeps per rank); ``wrap`` builds the model and optimizer for one strategy behind the
one interface of ``data_parallel``; ``state_bytes`` measures the optimizer state per rank.
"""

from gpt_parallel.fsdp.data_parallel import DataParallel, DDPDataParallel, FSDP2DataParallel
from gpt_parallel.fsdp.dtensor_optimizer import (
    ShardedStatsOptimizer,
    is_dtensor,
    local_shard,
    sharded_l2_norm,
)
from gpt_parallel.fsdp.state_bytes import optimizer_state_bytes
from gpt_parallel.fsdp.strategy import (
    STRATEGIES,
    check_strategy,
    fsdp2_excludes_distributed_optimizer,
    strategy_from_flags,
)
from gpt_parallel.fsdp.torch_fsdp2 import apply_torch_fsdp2, dp_mesh
from gpt_parallel.fsdp.wrap import wrap_data_parallel
from gpt_parallel.fsdp.zero2 import GradShards, Zero2Optimizer

__all__ = [
    "STRATEGIES",
    "DDPDataParallel",
    "DataParallel",
    "FSDP2DataParallel",
    "GradShards",
    "ShardedStatsOptimizer",
    "Zero2Optimizer",
    "apply_torch_fsdp2",
    "check_strategy",
    "dp_mesh",
    "fsdp2_excludes_distributed_optimizer",
    "is_dtensor",
    "local_shard",
    "optimizer_state_bytes",
    "sharded_l2_norm",
    "strategy_from_flags",
    "wrap_data_parallel",
]
