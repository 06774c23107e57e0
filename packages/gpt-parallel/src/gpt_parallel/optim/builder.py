"""Build the optimizer the original's ``get_megatron_optimizer`` builds, from typed settings.

Adam is torch's AdamW (decoupled weight decay, which is what the original's fused Adam does in
its default AdamW mode); SGD is torch's SGD with momentum. A bf16 or fp16 model gets fp32 main
params; fp16 gets a dynamic loss scaler unless ``--loss-scale`` fixes one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """The optimizer's flags, by their argparse dest names."""

    lr: float
    optimizer: str = "adam"
    min_lr: float = 0.0
    decoupled_lr: float | None = None
    decoupled_min_lr: float | None = None
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    sgd_momentum: float = 0.9
    fp16: bool = False
    bf16: bool = False
    loss_scale: float | None = None
    initial_loss_scale: float = 2.0**32
    min_loss_scale: float = 1.0
    loss_scale_window: float = 1000
    hysteresis: int = 2
    clip_grad: float = 1.0
    log_num_zeros_in_grad: bool = False


def build_grad_scaler(config: OptimizerConfig, device: torch.device) -> GradScaler | None:
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
    *,
    grad_stats_group: ProcessGroup | None = None,
    tp_rank: int = 0,
    is_decoupled: NamedParamPredicate = is_embedding_or_output,
    no_weight_decay_cond: NamedParamPredicate = no_weight_decay,
    counts_for_norm: ParamPredicate | None = None,
    align_group: ProcessGroup | None = None,
) -> MegatronOptimizer:
    """Param groups, the inner torch optimizer, and the fp32 or mixed-precision wrapper.

    ``grad_stats_group`` is where grad norms, zero counts and overflow flags are reduced: the
    model-parallel group (``ParallelState.group("tp-pp")``) for this non-distributed optimizer.
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"--optimizer {config.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if config.fp16 and config.bf16:
        raise ValueError("--fp16 and --bf16 cannot both be set")
    groups = build_param_groups(
        named_parameters,
        lr=config.lr,
        min_lr=config.min_lr,
        decoupled_lr=config.decoupled_lr,
        decoupled_min_lr=config.decoupled_min_lr,
        is_decoupled=is_decoupled,
        no_weight_decay_cond=no_weight_decay_cond,
        align_group=align_group,
    )
    if not any(group["params"] for group in groups):
        raise ValueError("the model has no trainable parameters to optimize")
    if config.optimizer == "adam":
        inner: torch.optim.Optimizer = torch.optim.AdamW(
            groups,
            lr=config.lr,
            weight_decay=config.weight_decay,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_eps,
            fused=_fused_adam_supported(groups),
        )
    else:
        inner = torch.optim.SGD(
            groups, lr=config.lr, weight_decay=config.weight_decay, momentum=config.sgd_momentum
        )
    common = {
        "clip_grad": config.clip_grad,
        "log_num_zeros_in_grad": config.log_num_zeros_in_grad,
        "grad_stats_group": grad_stats_group,
        "tp_rank": tp_rank,
        "counts_for_norm": counts_for_norm,
    }
    if config.fp16 or config.bf16:
        device = next(p for g in groups for p in g["params"]).device
        scaler = build_grad_scaler(config, device)
        return Float16OptimizerWithFloat16Params(inner, scaler, fp16=config.fp16, **common)
    return FP32Optimizer(inner, **common)


def _fused_adam_supported(groups: list[dict]) -> bool | None:
    """torch's fused AdamW (one kernel over all tensors, as the original's fused Adam) where
    every parameter is a floating tensor on a device it supports; else torch's default."""
    params = [p for group in groups for p in group["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return True if fused else None
