"""Data parallelism: flat gradient buffers in buckets, the DDP wrapper, the distributed optimizer.

The original's ``megatron.core.distributed`` (DistributedDataParallel, _ParamAndGradBuffer) and
``DistributedOptimizer``, as small modules: ``layout`` (pure bucket arithmetic), ``buffer``
(the flat tensors), ``comm`` (the collectives), ``bucket_sync`` (one bucket's communication),
``data_parallel`` (the wrapper), ``shards`` and ``distributed_optimizer`` (ZeRO-1),
``reduce_op`` (how a bucket is scaled and reduced), ``cpu_offload`` (optimizer state on the
CPU), and ``weight_hash`` (the replica consistency check).
"""

from gpt_parallel.ddp.buffer import Bucket, ParamAndGradBuffer
from gpt_parallel.ddp.config import DDPConfig
from gpt_parallel.ddp.cpu_offload import CpuOffloadConfig
from gpt_parallel.ddp.data_parallel import DistributedDataParallel
from gpt_parallel.ddp.distributed_optimizer import DistributedOptimizer
from gpt_parallel.ddp.layout import BufferLayout, ParamSlot, plan_buffer
from gpt_parallel.ddp.weight_hash import check_param_hashes_across_dp_replicas

__all__ = [
    "Bucket",
    "BufferLayout",
    "CpuOffloadConfig",
    "DDPConfig",
    "DistributedDataParallel",
    "DistributedOptimizer",
    "ParamAndGradBuffer",
    "ParamSlot",
    "check_param_hashes_across_dp_replicas",
    "plan_buffer",
]
