"""residual + dropout(x + bias): how every sublayer output joins the residual stream."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bias_dropout_add_reference(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor,
    prob: float,
    training: bool,
) -> torch.Tensor:
    """The original's order of operations: add the bias, drop out, then add the residual."""
    if bias is not None:
        x = x + bias
    out = F.dropout(x, p=prob, training=training)
    return residual + out
