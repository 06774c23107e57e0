"""Optimizers for training: param groups, Adam/SGD, fp16/bf16 main params, loss scaling, clipping."""

from gpt_parallel.optim.builder import (
    build_distributed_optimizer,
    build_grad_scaler,
    build_optimizer,
)
from gpt_parallel.optim.clip_grads import (
    clip_grads_by_total_norm,
    count_zeros,
    counts_for_grad_norm,
    counts_for_params_norm,
    l2_norm,
    params_l2_norm,
)
from gpt_parallel.optim.grad_scaler import ConstantGradScaler, DynamicGradScaler, GradScaler
from gpt_parallel.optim.optimizer import (
    Float16OptimizerWithFloat16Params,
    FP32Optimizer,
    MegatronOptimizer,
)
from gpt_parallel.optim.param_groups import PARAM_GROUP_KEYS, build_param_groups, no_weight_decay

__all__ = [
    "PARAM_GROUP_KEYS",
    "ConstantGradScaler",
    "DynamicGradScaler",
    "FP32Optimizer",
    "Float16OptimizerWithFloat16Params",
    "GradScaler",
    "MegatronOptimizer",
    "build_distributed_optimizer",
    "build_grad_scaler",
    "build_optimizer",
    "build_param_groups",
    "clip_grads_by_total_norm",
    "count_zeros",
    "counts_for_grad_norm",
    "counts_for_params_norm",
    "l2_norm",
    "no_weight_decay",
    "params_l2_norm",
]
