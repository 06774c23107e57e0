"""RoPE tables: the original's frequency formulas and their variants."""

from __future__ import annotations

import math

import pytest
import torch
from gpt_models.rotary import RotaryEmbedding, llama3_scaled_inv_freq, yarn_mscale
from gpt_models.transformer_config import TransformerConfig


def rope(**overrides) -> RotaryEmbedding:
    base = dict(
        num_layers=1,
        hidden_size=64,
        num_attention_heads=4,
        padded_vocab_size=8,
        max_position_embeddings=64,
        position_embedding_type="rope",
    )
    return RotaryEmbedding(TransformerConfig.from_flat(**{**base, **overrides}))


def test_standard_frequencies_and_rotate_half_layout() -> None:
    emb = rope()
    expected = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))
    torch.testing.assert_close(emb.inv_freq, expected)
    tables = emb(5, torch.device("cpu"), torch.float32)
    assert tables.cos.shape == (5, 1, 1, 16)
    angles = 3 * expected
    torch.testing.assert_close(tables.cos[3, 0, 0], torch.cat((angles, angles)).cos())


def test_rotary_percent_rotates_only_a_prefix_of_each_head() -> None:
    assert rope(rotary_percent=0.5).rot_dim == 8


def test_interleaved_tables_repeat_each_frequency_twice_in_a_row() -> None:
    tables = rope(rotary_interleaved=True)(2, torch.device("cpu"), torch.float32)
    row = tables.cos[1, 0, 0]
    torch.testing.assert_close(row[0::2], row[1::2])


def test_sequence_interpolation_divides_positions() -> None:
    plain, stretched = rope(), rope(rotary_seq_len_interpolation_factor=4.0)
    a = stretched(8, torch.device("cpu"), torch.float32).cos[4]
    b = plain(8, torch.device("cpu"), torch.float32).cos[1]
    torch.testing.assert_close(a, b)


def test_llama3_scaling_keeps_high_and_divides_low_frequencies() -> None:
    inv = torch.tensor([1.0, 1e-2, 1e-4])  # wavelengths 6.3, 628, 62832 against 2048/8192
    scaled = llama3_scaled_inv_freq(inv, factor=8.0)
    assert scaled[0] == inv[0] and scaled[2] == pytest.approx(inv[2] / 8)
    assert inv[1] / 8 < scaled[1] <= inv[1]
    assert not torch.equal(rope(use_rope_scaling=True).inv_freq, rope().inv_freq)


def test_yarn_scales_cos_and_sin_by_its_attention_factor() -> None:
    assert yarn_mscale(1.0, 1.0, 0.0) == 1.0
    assert yarn_mscale(4.0, 1.0, 0.0) == pytest.approx(0.1 * math.log(4.0) + 1.0)
    emb = rope(
        rope_type="yarn", rotary_scaling_factor=4.0, yarn_original_max_position_embeddings=16
    )
    tables = emb(3, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(tables.cos[0, 0, 0], torch.full((16,), emb.mscale))
