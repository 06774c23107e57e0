"""Optimizer flags owned by gpt-parallel (read by `optim.builder`): weight decay, clipping,
Adam/SGD settings, and the precision-aware optimizer's state dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """The original's "regularization" flags owned here."""

    GROUP: ClassVar[str] = "regularization"

    weight_decay: float = flag(
        0.01,
        "--weight-decay",
        type=float,
        help="Weight decay coefficient for L2 regularization.",
        status=EFFECTIVE,
    )
    start_weight_decay: float | None = flag(
        None,
        "--start-weight-decay",
        type=float,
        help="Initial weight decay coefficient for L2 regularization.",
        status=EFFECTIVE,
    )
    end_weight_decay: float | None = flag(
        None,
        "--end-weight-decay",
        type=float,
        help="End of run weight decay coefficient for L2 regularization.",
        status=EFFECTIVE,
    )
    weight_decay_incr_style: str = flag(
        "constant",
        "--weight-decay-incr-style",
        choices=("constant", "linear", "cosine"),
        help="Weight decay increment function.",
        status=EFFECTIVE,
    )
    clip_grad: float = flag(
        1.0,
        "--clip-grad",
        type=float,
        help="Gradient clipping based on global L2 norm.",
        status=EFFECTIVE,
    )
    adam_beta1: float = flag(
        0.9,
        "--adam-beta1",
        type=float,
        help="First coefficient for computing running averages of gradient and its square",
        status=EFFECTIVE,
    )
    adam_beta2: float = flag(
        0.999,
        "--adam-beta2",
        type=float,
        help="Second coefficient for computing running averages of gradient and its square",
        status=EFFECTIVE,
    )
    adam_eps: float = flag(
        1e-08,
        "--adam-eps",
        type=float,
        help="Term added to the denominator to improvenumerical stability",
        status=EFFECTIVE,
    )
    sgd_momentum: float = flag(
        0.9, "--sgd-momentum", type=float, help="Momentum factor for sgd", status=EFFECTIVE
    )


@dataclass(frozen=True, kw_only=True)
class PrecisionAwareOptimizerConfig:
    """The original's "experimental" flags owned here."""

    GROUP: ClassVar[str] = "experimental"

    use_precision_aware_optimizer: bool = flag(
        False,
        "--use-precision-aware-optimizer",
        action="store_true",
        help="Use the precision-aware optimizer in TransformerEngine, which allows setting the main params and optimizer states to lower precision, such as fp16, bf16 and fp8.",
        status=NOT_IMPLEMENTED,
    )
    main_grads_dtype: str = flag(
        "fp32",
        "--main-grads-dtype",
        choices=("fp32", "bf16"),
        help="Dtype of main grads when enabling precision-aware- optimizer",
        status=NOT_IMPLEMENTED,
    )
    main_params_dtype: str = flag(
        "fp32",
        "--main-params-dtype",
        choices=("fp32", "fp16"),
        help="Dtype of main params when enabling precision-aware- optimizer",
        status=NOT_IMPLEMENTED,
    )
    exp_avg_dtype: str = flag(
        "fp32",
        "--exp-avg-dtype",
        choices=("fp32", "fp16", "bf16", "fp8"),
        help="Dtype of exp_avg (1st moment in adam optimizer) when enabling precision-aware-optimizer. This dtype is used for storing the optimizer state in memory during training but does not affect the precision in the kernel computation.",
        status=NOT_IMPLEMENTED,
    )
    exp_avg_sq_dtype: str = flag(
        "fp32",
        "--exp-avg-sq-dtype",
        choices=("fp32", "fp16", "bf16", "fp8"),
        help="Dtype of exp_avg_sq (2nd moment in adam optimizer) when enabling precision-aware-optimizer. This dtype is used for storing the optimizer state in memory during training but does not affect the precision in the kernel computation.",
        status=NOT_IMPLEMENTED,
    )
