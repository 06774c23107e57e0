"""The linear layer every projection uses, shaped like the original's local linear layers.

It returns ``(output, bias)``: with ``skip_bias_add`` the bias is handed back unadded so the
consumer can fuse it (bias-GeLU, bias-dropout-add), otherwise it is added and ``None`` is
returned. It also writes an ``_extra_state`` entry (None) into the state dict, as the
original's ColumnParallelLinear/RowParallelLinear do, so our state dict has the original's
exact key set.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gpt_models.kernels import matmul


class Linear(nn.Module):
    """y = x W^T (+ b), W is [out_features, in_features]."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        skip_bias_add: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.skip_bias_add = skip_bias_add
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = matmul.linear(x, self.weight)
        if self.skip_bias_add:
            return out, self.bias
        # Added after the matmul (not fused into addmm) as the original does.
        return (out if self.bias is None else out + self.bias), None

    def get_extra_state(self) -> Any:
        """Nothing to store; present so the key set matches the original's."""
        return None

    def set_extra_state(self, state: Any) -> None:
        """Accept whatever the original wrote (None, or TE's FP8 metadata we do not use)."""

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, skip_bias_add={self.skip_bias_add}"
        )
