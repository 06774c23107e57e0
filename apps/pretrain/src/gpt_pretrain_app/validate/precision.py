"""Mixed precision: fp16 / bf16 and what each turns on or off."""

from __future__ import annotations

from .context import Resolution, require


def resolve_precision(r: Resolution) -> None:
    a = r.args
    require(not (a.fp16 and a.bf16), "--fp16 and --bf16 are mutually exclusive")
    a.params_dtype = "float16" if a.fp16 else "bfloat16" if a.bf16 else "float32"
    if a.fp16 and a.loss_scale is None and a.check_for_nan_in_loss_and_grad:
        # The dynamic loss scaler finds overflows itself; a NaN check would stop the run instead.
        a.check_for_nan_in_loss_and_grad = False
    if a.bf16 and not a.grad_reduce_in_bf16:
        a.accumulate_allreduce_grads_in_fp32 = True
    require(a.fp16 or not a.fp16_lm_cross_entropy, "--fp16-lm-cross-entropy needs --fp16")
    require(
        a.fp16 or a.bf16 or not a.fp32_residual_connection,
        "--fp32-residual-connection needs --fp16 or --bf16",
    )
    require(a.bf16 or not a.grad_reduce_in_bf16, "--grad-reduce-in-bf16 needs --bf16")
    if a.loss_scale is not None:
        require(a.loss_scale > 0, f"--loss-scale must be positive, got {a.loss_scale}")
    require(a.initial_loss_scale > 0, "--initial-loss-scale must be positive")
    require(a.min_loss_scale > 0, "--min-loss-scale must be positive")
    require(a.hysteresis >= 1, "--hysteresis must be at least 1")
    require(a.loss_scale_window > 0, "--loss-scale-window must be positive")
    if a.fp8 is not None:
        require(a.fp16 or a.bf16, "--fp8-format needs --bf16 or --fp16 for the non-fp8 parts")
