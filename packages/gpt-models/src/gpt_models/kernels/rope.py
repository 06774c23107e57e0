"""Apply rotary position embeddings to queries or keys laid out [s, b, heads, dim].

``cos``/``sin`` are [s, 1, 1, rot_dim] (already multiplied by the YaRN mscale and cast to the
activation dtype); only the first ``rot_dim`` channels are rotated (``--rotary-percent``), the
rest pass through. Rotate-half pairs channel i with i + rot_dim/2; the interleaved variant pairs
2i with 2i+1.
"""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """[-x2, x1] for the two halves, or per adjacent pair when interleaved."""
    if not interleaved:
        x1, x2 = torch.chunk(x, 2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)
    x1 = x[..., ::2]
    x2 = x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rope_reference(
    t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool
) -> torch.Tensor:
    """t * cos + rotate_half(t) * sin on the rotated channels."""
    rot_dim = cos.shape[-1]
    if rot_dim == t.shape[-1]:
        return t * cos + rotate_half(t, interleaved) * sin
    t_rot, t_pass = t[..., :rot_dim], t[..., rot_dim:]
    t_rot = t_rot * cos + rotate_half(t_rot, interleaved) * sin
    return torch.cat((t_rot, t_pass), dim=-1)
