"""Which data-parallel sharding strategy the flags ask for, checked in one place.

``--data-parallel-sharding-strategy`` (with ``--use-megatron-fsdp``) maps onto what this package
has; ``--use-torch-fsdp2`` is ``optim_grads_params`` through torch's FSDP2 with its own
``--torch-fsdp2-no-reshard-after-forward``. What each keeps per rank, for P parameters on dp
ranks (the optimizer state is the two Adam moments, plus fp32 main params for bf16/fp16):

=====================  ====================================  =====  ======  ============
strategy               built from                            params grads   optim. state
=====================  ====================================  =====  ======  ============
no_shard               DDP + FP32/Float16 optimizer           P      P       full
optim                  DDP + DistributedOptimizer (ZeRO-1)    P      P       1/dp
optim_grads            DDP + Zero2Optimizer (ZeRO-2)          P      P->1/dp 1/dp
optim_grads_params     FSDP2 fully_shard (ZeRO-3)             1/dp   1/dp    1/dp
=====================  ====================================  =====  ======  ============

(ZeRO-2 holds the full gradient buffer from ``zero_grad_buffer`` through the step and 1/dp
after it; FSDP2 gathers one layer's parameters and gradients at a time, two without
``reshard_after_forward``.)
"""

from __future__ import annotations

STRATEGIES = ("no_shard", "optim", "optim_grads", "optim_grads_params")


def check_strategy(strategy: str) -> str:
    """``strategy`` if it is one of ``STRATEGIES``; else one line naming the flag."""
    if strategy not in STRATEGIES:
        raise ValueError(
            f"--data-parallel-sharding-strategy {strategy!r} is not one of {', '.join(STRATEGIES)}"
        )
    return strategy


def fsdp2_excludes_distributed_optimizer(use_distributed_optimizer: bool) -> None:
    """FSDP2 shards the optimizer state itself; a second sharding of it makes no sense."""
    if use_distributed_optimizer:
        raise ValueError(
            "--use-torch-fsdp2 (sharding strategy optim_grads_params) cannot be combined with"
            " --use-distributed-optimizer: FSDP2 shards the optimizer state itself"
        )


def strategy_from_flags(
    *,
    use_torch_fsdp2: bool,
    use_megatron_fsdp: bool,
    data_parallel_sharding_strategy: str,
    use_distributed_optimizer: bool,
) -> str:
    """The strategy the flags select (plain DDP is ``no_shard``, ZeRO-1 is ``optim``).

    With ``--use-megatron-fsdp`` the sharding strategy decides and ``--use-distributed-optimizer``
    is implied by it (as in the original); ``--use-torch-fsdp2`` excludes it.
    """
    if use_torch_fsdp2 and use_megatron_fsdp:
        raise ValueError("--use-torch-fsdp2 and --use-megatron-fsdp cannot both be set")
    if use_torch_fsdp2:
        fsdp2_excludes_distributed_optimizer(use_distributed_optimizer)
        return "optim_grads_params"
    if use_megatron_fsdp:
        return check_strategy(data_parallel_sharding_strategy)
    return "optim" if use_distributed_optimizer else "no_shard"
