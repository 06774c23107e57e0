"""LayerNorm, RMSNorm and the parameter-free L2 norm used on queries and keys.

With ``zero_centered_gamma`` (the original's --apply-layernorm-1p) the stored weight is
centred on zero and the norm multiplies by (1 + weight); weights then start at 0 instead of 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension, with weight and bias."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-5,
        zero_centered_gamma: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.zero_centered_gamma = zero_centered_gamma
        self.weight = nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight 1 (0 when zero-centred), bias 0."""
        with torch.no_grad():
            self.weight.fill_(0.0 if self.zero_centered_gamma else 1.0)
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight + 1 if self.zero_centered_gamma else self.weight
        if x.dtype == weight.dtype:
            return F.layer_norm(x, (self.hidden_size,), weight, self.bias, self.eps)
        # fp32 residual stream with low-precision weights: normalise in the input's
        # precision, hand the result on in the parameters' dtype.
        out = F.layer_norm(
            x, (self.hidden_size,), weight.to(x.dtype), self.bias.to(x.dtype), self.eps
        )
        return out.to(weight.dtype)


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension, with a weight and no bias."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-5,
        zero_centered_gamma: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.zero_centered_gamma = zero_centered_gamma
        self.weight = nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight 1 (0 when zero-centred)."""
        with torch.no_grad():
            self.weight.fill_(0.0 if self.zero_centered_gamma else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight + 1 if self.zero_centered_gamma else self.weight
        if x.dtype == weight.dtype:
            return F.rms_norm(x, (self.hidden_size,), weight, self.eps)
        out = F.rms_norm(x, (self.hidden_size,), weight.to(x.dtype), self.eps)
        return out.to(weight.dtype)


class L2Norm(nn.Module):
    """x / sqrt(mean(x^2) + eps), computed in fp32 (Llama-4's query/key norm); no parameters."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)


def build_norm(
    normalization: str,
    hidden_size: int,
    eps: float,
    zero_centered_gamma: bool = False,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """The norm named by --normalization."""
    if normalization == "LayerNorm":
        return LayerNorm(hidden_size, eps, zero_centered_gamma, device=device, dtype=dtype)
    if normalization == "RMSNorm":
        return RMSNorm(hidden_size, eps, zero_centered_gamma, device=device, dtype=dtype)
    raise ValueError(f"--normalization {normalization!r} is not one of LayerNorm, RMSNorm")
