"""MLP activations, with and without the bias add folded in.

The original's fused bias-GeLU uses the tanh approximation (constant 0.79788456), so with
``--bias-gelu-fusion`` (its default) the model's GeLU *is* the tanh form; without the fusion it
is the exact erf GeLU. Both behaviours are kept: ``bias_gelu`` is the fused formula and
``gelu`` the exact one. ``openai_gelu`` is the tanh form with the full-precision constant
(GPT-2's ``gelu_new``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GeLU (erf), the original's default activation without fusion."""
    return F.gelu(x)


def openai_gelu(x: torch.Tensor) -> torch.Tensor:
    """tanh-approximated GeLU as the original's --openai-gelu and GPT-2's gelu_new."""
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))))


def squared_relu(x: torch.Tensor) -> torch.Tensor:
    """relu(x)**2 (--squared-relu)."""
    return torch.pow(F.relu(x), 2)


def swiglu(x: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up where x = [gate, up] on the last dimension."""
    gate, up = torch.chunk(x, 2, dim=-1)
    return F.silu(gate) * up


def bias_gelu_reference(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The original's fused bias-GeLU formula: tanh GeLU of (x + bias)."""
    y = x + bias
    return y * 0.5 * (1.0 + torch.tanh(0.79788456 * y * (1 + 0.044715 * y * y)))


def bias_swiglu_reference(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """swiglu(x + bias), bias optional."""
    if bias is not None:
        x = x + bias
    return swiglu(x)


ACTIVATIONS = {
    "gelu": gelu,
    "openai_gelu": openai_gelu,
    "squared_relu": squared_relu,
    "silu": F.silu,
}
