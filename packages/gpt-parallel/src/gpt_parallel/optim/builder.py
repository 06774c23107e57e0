"""Build the optimizer the original's ``get_megatron_optimizer`` builds, from gpt-parallel's flag classes.

Adam is torch's AdamW (decoupled weight decay, which is what the original's fused Adam does in
its default AdamW mode); SGD is torch's SGD with momentum. A bf16 or fp16 model gets fp32 main
params; fp16 gets a dynamic loss scaler unless ``--loss-scale`` fixes one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from gpt_parallel.collectives import ProcessGroup
from gpt_parallel.optim.clip_grads import ParamPredicate
from gpt_parallel.optim.grad_scaler import ConstantGradScaler, DynamicGradScaler, GradScaler
from gpt_parallel.optim.optimizer import (
    Float16OptimizerWithFloat16Params,
    FP32Optimizer,
    MegatronOptimizer,
)
from gpt_parallel.optim.param_groups import (
    NamedParamPredicate,
    build_param_groups,
    is_embedding_or_output,
    no_weight_decay,
)
from gpt_parallel.optim_config import OptimizerConfig
from gpt_parallel.precision_config import PrecisionConfig
from gpt_parallel.schedule_config import LearningRateConfig

if TYPE_CHECKING:
    from gpt_parallel.ddp.cpu_offload import CpuOffloadConfig
    from gpt_parallel.ddp.data_parallel import DistributedDataParallel
    from gpt_parallel.ddp.distributed_optimizer import DistributedOptimizer

OPTIMIZERS = ("adam", "sgd")


def build_grad_scaler(config: PrecisionConfig, device: torch.device) -> GradScaler | None:
    """Constant with ``--loss-scale``; dynamic for fp16; none otherwise (scale 1)."""
    if config.loss_scale:
        return ConstantGradScaler(config.loss_scale, device)
    if config.fp16:
        return DynamicGradScaler(
            initial_scale=config.initial_loss_scale,
            min_scale=config.min_loss_scale,
            growth_factor=2.0,
            backoff_factor=0.5,
            growth_interval=int(config.loss_scale_window),
            hysteresis=config.hysteresis,
            device=device,
        )
    return None


def build_optimizer(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
    config: OptimizerConfig,
    learning_rate: LearningRateConfig,
    precision: PrecisionConfig | None = None,
    *,
    kind: str = "adam",
    log_num_zeros_in_grad: bool = False,
    grad_stats_group: ProcessGroup | None = None,
    tp_rank: int = 0,
    is_decoupled: NamedParamPredicate = is_embedding_or_output,
    no_weight_decay_cond: NamedParamPredicate = no_weight_decay,
    counts_for_norm: ParamPredicate | None = None,
    align_group: ProcessGroup | None = None,
    expert_grad_stats_group: ProcessGroup | None = None,
) -> MegatronOptimizer:
    """Param groups, the inner torch optimizer, and the fp32 or mixed-precision wrapper.

    ``kind`` is ``--optimizer`` and ``log_num_zeros_in_grad`` is ``--log-num-zeros-in-grad``
    (flags of other groups); everything else is read from gpt-parallel's own flag classes.
    ``grad_stats_group`` is where grad norms, zero counts and overflow flags are reduced: the
    model-parallel group (``ParallelState.group("tp-pp")``) for this non-distributed optimizer;
    ``expert_grad_stats_group`` the expert model-parallel group (``"etp-ep-pp"``) where the
    expert parameters' statistics are summed (None for a model without experts).
    """
    precision = precision or PrecisionConfig()
    if kind not in OPTIMIZERS:
        raise ValueError(f"--optimizer {kind!r} is not one of {', '.join(OPTIMIZERS)}")
    if precision.fp16 and precision.bf16:
        raise ValueError("--fp16 and --bf16 cannot both be set")
    lr = learning_rate.lr
    if lr is None:
        raise ValueError("--lr is required to build the optimizer")
    groups = build_param_groups(
        named_parameters,
        lr=lr,
        min_lr=learning_rate.min_lr,
        decoupled_lr=learning_rate.decoupled_lr,
        decoupled_min_lr=learning_rate.decoupled_min_lr,
        is_decoupled=is_decoupled,
        no_weight_decay_cond=no_weight_decay_cond,
        align_group=align_group,
    )
    if not any(group["params"] for group in groups):
        raise ValueError("the model has no trainable parameters to optimize")
    inner = _torch_optimizer(groups, config, lr, kind)
    common = {
        "clip_grad": config.clip_grad,
        "log_num_zeros_in_grad": log_num_zeros_in_grad,
        "grad_stats_group": grad_stats_group,
        "tp_rank": tp_rank,
        "counts_for_norm": counts_for_norm,
        "expert_grad_stats_group": expert_grad_stats_group,
    }
    if precision.fp16 or precision.bf16:
        device = next(p for g in groups for p in g["params"]).device
        scaler = build_grad_scaler(precision, device)
        return Float16OptimizerWithFloat16Params(inner, scaler, fp16=precision.fp16, **common)
    return FP32Optimizer(inner, **common)


def _torch_optimizer(
    groups: list[dict], config: OptimizerConfig, lr: float, kind: str
) -> torch.optim.Optimizer:
    """The inner torch optimizer over ``groups`` (``--optimizer`` adam or sgd)."""
    if kind == "adam":
        return torch.optim.AdamW(
            groups,
            lr=lr,
            weight_decay=config.weight_decay,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_eps,
            fused=_fused_adam_supported(groups),
        )
    return torch.optim.SGD(
        groups, lr=lr, weight_decay=config.weight_decay, momentum=config.sgd_momentum
    )


def build_distributed_optimizer(
    ddp: DistributedDataParallel,
    config: OptimizerConfig,
    learning_rate: LearningRateConfig,
    precision: PrecisionConfig | None = None,
    *,
    kind: str = "adam",
    log_num_zeros_in_grad: bool = False,
    grad_stats_group: ProcessGroup | None = None,
    tp_rank: int = 0,
    cpu_offload: CpuOffloadConfig | None = None,
    optimizer_class: type[DistributedOptimizer] | None = None,
) -> DistributedOptimizer:
    """``--use-distributed-optimizer``: the groups and inner optimizer ``build_optimizer``
    makes, over this rank's shards of ``ddp``'s buffers (ZeRO-1).

    ``grad_stats_group`` must span every rank that holds a piece of the gradient once (the
    whole world for a dense model; one instance's ranks, ``ParallelState.group("intra-dist-opt")``,
    with ``--num-distributed-optimizer-instances`` > 1): the norm sums the pieces' squares over
    it. ``cpu_offload`` (``CpuOffloadConfig.from_flags``) keeps part of the state on the CPU.
    ``optimizer_class`` picks a subclass (ZeRO-2's, for megatron-fsdp's optim_grads).
    """
    from gpt_parallel.ddp.distributed_optimizer import DistributedOptimizer

    precision = precision or PrecisionConfig()
    plain = build_optimizer(
        ddp.module.named_parameters(),
        config,
        learning_rate,
        PrecisionConfig(),  # fp32 wrapper: the groups over the model's own parameters
        kind=kind,
    )
    scaler = None
    if precision.fp16 or precision.bf16:
        scaler = build_grad_scaler(precision, ddp.grad_buffers[0].grad_data.device)
    return (optimizer_class or DistributedOptimizer)(
        plain.optimizer,
        ddp,
        clip_grad=config.clip_grad,
        log_num_zeros_in_grad=log_num_zeros_in_grad,
        grad_stats_group=grad_stats_group,
        tp_rank=tp_rank,
        grad_scaler=scaler,
        cpu_offload=cpu_offload,
    )


def _fused_adam_supported(groups: list[dict]) -> bool | None:
    """torch's fused AdamW (one kernel over all tensors, as the original's fused Adam) where
    every parameter is a floating tensor on a device it supports; else torch's default."""
    params = [p for group in groups for p in group["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return True if fused else None
