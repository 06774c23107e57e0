"""Rotary position embedding tables: standard, Llama-3.x scaled, interpolated, and YaRN.

The model computes one (cos, sin) pair per forward and hands it to every layer; the kernel in
``kernels/rope.py`` applies it. Frequencies follow the original:
``inv_freq = 1 / base^(arange(0, dim, 2) / dim)`` with ``dim = int(kv_channels * rotary_percent)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gpt_models.transformer_config import TransformerConfig


@dataclass(frozen=True)
class RotaryTables:
    """cos and sin, [s, 1, 1, rot_dim], already scaled by the YaRN mscale."""

    cos: torch.Tensor
    sin: torch.Tensor


def standard_inv_freq(dim: int, base: float) -> torch.Tensor:
    """1 / base^(2i/dim) for i < dim/2, in fp32."""
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))


def llama3_scaled_inv_freq(
    inv_freq: torch.Tensor,
    factor: float,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
    original_max_position_embeddings: int = 8192,
) -> torch.Tensor:
    """Llama-3.1 frequency scaling (the original fixes the three constants to these values)."""
    low_freq_wavelen = original_max_position_embeddings / low_freq_factor
    high_freq_wavelen = original_max_position_embeddings / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max_position_embeddings / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def _yarn_correction_dim(rotations: float, dim: int, base: float, max_pos: int) -> float:
    return (dim * math.log(max_pos / (rotations * 2 * math.pi))) / (2 * math.log(base))


def yarn_inv_freq(
    dim: int,
    base: float,
    scaling_factor: float,
    original_max_position_embeddings: int,
    beta_fast: float,
    beta_slow: float,
    round_to_int: bool,
) -> torch.Tensor:
    """Blend of interpolated and extrapolated frequencies with YaRN's linear ramp."""
    extra = standard_inv_freq(dim, base)
    inter = 1.0 / (scaling_factor * base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    low = _yarn_correction_dim(beta_fast, dim, base, original_max_position_embeddings)
    high = _yarn_correction_dim(beta_slow, dim, base, original_max_position_embeddings)
    if round_to_int:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1.0 - ramp
    return inter * (1 - extrapolation) + extra * extrapolation


def yarn_mscale(scaling_factor: float, mscale: float | None, mscale_all_dim: float | None) -> float:
    """The attention (concentration) factor YaRN multiplies cos and sin by."""

    def get(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if mscale is None or mscale_all_dim is None:
        return get(scaling_factor)
    return float(get(scaling_factor, mscale) / get(scaling_factor, mscale_all_dim))


class RotaryEmbedding(nn.Module):
    """Produces the RoPE tables for a sequence length; holds no parameters."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        assert config.kv_channels is not None
        self.interleaved = config.rotary_interleaved
        self.interpolation_factor = config.rotary_seq_len_interpolation_factor
        self.mscale = 1.0
        if config.uses_yarn:
            dim = config.kv_channels
            original = config.yarn_original_max_position_embeddings or (
                config.max_position_embeddings
            )
            inv_freq = yarn_inv_freq(
                dim,
                config.rotary_base,
                config.rotary_scaling_factor,
                original,
                config.yarn_beta_fast,
                config.yarn_beta_slow,
                config.yarn_correction_range_round_to_int,
            )
            self.mscale = yarn_mscale(
                config.rotary_scaling_factor, config.mscale, config.mscale_all_dim
            )
            self.interpolation_factor = None  # YaRN replaces position interpolation
        else:
            dim = config.kv_channels
            if config.rotary_percent < 1.0:
                dim = int(dim * config.rotary_percent)
            inv_freq = standard_inv_freq(dim, config.rotary_base)
            if config.use_rope_scaling:
                inv_freq = llama3_scaled_inv_freq(inv_freq, config.rope_scaling_factor)
        self.rot_dim = dim
        # A plain CPU tensor, not a buffer: it is never saved, and building the model on the
        # meta device must not lose it.
        self.inv_freq = inv_freq.to("cpu")
        self._cache: dict[tuple, RotaryTables] = {}

    def freqs(
        self, seq_len: int, offset: int = 0, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Angles [seq_len, rot_dim] for positions offset .. offset + seq_len - 1."""
        inv_freq = self.inv_freq.to(device)
        seq = torch.arange(seq_len, device=inv_freq.device, dtype=inv_freq.dtype) + offset
        if self.interpolation_factor is not None:
            seq *= 1 / self.interpolation_factor
        freqs = torch.outer(seq, inv_freq)
        if self.interleaved:
            return torch.stack((freqs, freqs), dim=-1).view(seq_len, -1)
        return torch.cat((freqs, freqs), dim=-1)

    @torch.no_grad()
    def forward(
        self, seq_len: int, device: torch.device, dtype: torch.dtype, offset: int = 0
    ) -> RotaryTables:
        key = (seq_len, offset, dtype, str(device))
        tables = self._cache.get(key)
        if tables is None:
            emb = self.freqs(seq_len, offset, device)[:, None, None, :]
            tables = RotaryTables(
                cos=(torch.cos(emb) * self.mscale).to(dtype),
                sin=(torch.sin(emb) * self.mscale).to(dtype),
            )
            self._cache = {key: tables}
        return tables
