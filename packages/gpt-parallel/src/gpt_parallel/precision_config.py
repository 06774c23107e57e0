"""Mixed-precision flags owned by gpt-parallel: fp16/bf16, loss scaling, fp32 gradient
accumulation (read by `optim.builder` and the grad accumulator).
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
class PrecisionConfig:
    """The original's "mixed precision" flags owned here."""

    GROUP: ClassVar[str] = "mixed precision"

    fp16: bool = flag(
        False, "--fp16", action="store_true", help="Run model in fp16 mode.", status=EFFECTIVE
    )
    bf16: bool = flag(
        False,
        "--bf16",
        action="store_true",
        help="Run model in bfloat16 mode.",
        status=EFFECTIVE,
    )
    grad_reduce_in_bf16: bool = flag(
        False,
        "--grad-reduce-in-bf16",
        action="store_true",
        help="Reduce gradients in bfloat16.",
        status=EFFECTIVE,
    )
    loss_scale: float | None = flag(
        None,
        "--loss-scale",
        type=float,
        help="Static loss scaling, positive power of 2 values can improve fp16 convergence. If None, dynamicloss scaling is used.",
        status=EFFECTIVE,
    )
    initial_loss_scale: float = flag(
        4294967296,
        "--initial-loss-scale",
        type=float,
        help="Initial loss-scale for dynamic loss scaling.",
        status=EFFECTIVE,
    )
    min_loss_scale: float = flag(
        1.0,
        "--min-loss-scale",
        type=float,
        help="Minimum loss scale for dynamic loss scaling.",
        status=EFFECTIVE,
    )
    loss_scale_window: float = flag(
        1000,
        "--loss-scale-window",
        type=float,
        help="Window over which to raise/lower dynamic scale.",
        status=EFFECTIVE,
    )
    hysteresis: int = flag(
        2,
        "--hysteresis",
        type=int,
        help="hysteresis for dynamic loss scaling",
        status=EFFECTIVE,
    )
    accumulate_allreduce_grads_in_fp32: bool = flag(
        False,
        "--accumulate-allreduce-grads-in-fp32",
        action="store_true",
        help="Gradient accumulation and all-reduce in fp32.",
        status=EFFECTIVE,
    )
    reuse_grad_buf_for_mxfp8_param_ag: bool = flag(
        False,
        "--reuse-grad-buf-for-mxfp8-param-ag",
        action="store_true",
        help="If True, reuse the grad buffer for MXFP8 parameter all-gather.",
        status=NOT_IMPLEMENTED,
    )

    # Derived by validation (not flags), in the original's names.
    params_dtype: str | None = None
    """float32, bfloat16 or float16: what --fp16/--bf16 make the parameters."""
