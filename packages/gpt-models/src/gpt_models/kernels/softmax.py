"""Scale + mask + softmax of attention scores (the unfused attention path).

Masked positions are filled with -10000.0 before the softmax, as the original's mask function
does (not -inf), so a fully masked row gives a uniform distribution instead of NaNs.
"""

from __future__ import annotations

import torch

MASK_FILL_VALUE = -10000.0


def causal_mask(sq: int, sk: int, device: torch.device) -> torch.Tensor:
    """[1, 1, sq, sk] bool mask, True above the diagonal (= not attended)."""
    return torch.ones(sq, sk, dtype=torch.bool, device=device).triu(1 + sk - sq)[None, None]


def scale_mask_softmax_reference(
    scores: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float | None,
    softmax_in_fp32: bool,
) -> torch.Tensor:
    """softmax(mask(scores * scale)) over the last dim, returned in the scores' dtype."""
    x = scores.float() if softmax_in_fp32 and scores.dtype != torch.float32 else scores
    if scale is not None:
        x = x * scale
    if mask is not None:
        x = x.masked_fill(mask, MASK_FILL_VALUE)
    probs = torch.softmax(x, dim=-1)
    return probs.to(scores.dtype)
