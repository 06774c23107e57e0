"""The model's matrix products, with bf16/fp16 GEMMs done in fp32 on CPUs that lack them.

A CPU without native bf16/fp16 matrix instructions (no AVX512-BF16/AMX, e.g. AVX2-only x86)
has no fast low-precision GEMM in PyTorch: its fallback runs at 1-7 GFLOP/s, 20-100x slower
than the fp32 GEMM of the same machine. There the product is computed from the same bf16/fp16
operands converted to fp32 (exactly) and the result rounded back to bf16/fp16, which is what
a native kernel does too (fp32 accumulation, one rounding at the end); only the order of the
additions may differ. Tensors keep their dtype; only the GEMM's arithmetic moves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOW_PRECISION = (torch.bfloat16, torch.float16)


def _native_low_precision_gemm() -> dict[torch.dtype, bool]:
    """Whether this CPU has fast bf16 / fp16 GEMMs (oneDNN's own check)."""
    try:
        mkldnn = torch.ops.mkldnn
        return {
            torch.bfloat16: bool(mkldnn._is_mkldnn_bf16_supported()),
            torch.float16: bool(mkldnn._is_mkldnn_fp16_supported()),
        }
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return {torch.bfloat16: False, torch.float16: False}


# Read once: a constant for torch.compile's tracer as well.
NATIVE_LOW_PRECISION_GEMM = _native_low_precision_gemm()


def gemm_in_fp32(x: torch.Tensor) -> bool:
    """Whether products of this (CPU, bf16/fp16) tensor are computed in fp32."""
    return (
        x.device.type == "cpu"
        and x.dtype in LOW_PRECISION
        and not NATIVE_LOW_PRECISION_GEMM.get(x.dtype, False)
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T (+ bias)`` in x's dtype (fp32 arithmetic where ``gemm_in_fp32``)."""
    if not gemm_in_fp32(x):
        return F.linear(x, weight, bias)
    out = F.linear(x.float(), weight.float(), None if bias is None else bias.float())
    return out.to(x.dtype)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched ``a @ b`` in a's dtype (fp32 arithmetic where ``gemm_in_fp32``)."""
    if not gemm_in_fp32(a):
        return torch.bmm(a, b)
    return torch.bmm(a.float(), b.float()).to(a.dtype)


def scaled_bmm(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * (a @ b)`` as one baddbmm (the scale applied before the rounding)."""
    dtype = a.dtype
    if gemm_in_fp32(a):
        a, b = a.float(), b.float()
    shape = (a.shape[0], a.shape[1], b.shape[2])
    empty = torch.empty(shape, dtype=a.dtype, device=a.device)
    return torch.baddbmm(empty, a, b, beta=0.0, alpha=alpha).to(dtype)
