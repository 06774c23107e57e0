"""TransformerConfig: the original's derived defaults and one-line errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from gpt_models.spec import LayerSpec, gpt_block_spec
from gpt_models.transformer_config import (
    TransformerConfig,
    TransformerConfigError,
    UnsupportedFeatureError,
)

BASE = dict(
    num_layers=4,
    hidden_size=64,
    num_attention_heads=4,
    padded_vocab_size=128,
    max_position_embeddings=32,
)


def make(**overrides) -> TransformerConfig:
    return TransformerConfig.from_flat(**{**BASE, **overrides})


def test_derived_defaults_follow_the_original() -> None:
    c = make()
    assert c.ffn_hidden_size == 256 and c.kv_channels == 16
    assert c.num_query_groups is None and c.num_groups == 4
    assert c.add_qkv_bias  # add_bias_linear implies the qkv bias
    assert c.embedding_init_method_std == 0.02
    assert c.init_std_output_layers == pytest.approx(0.02 / (2 * 4) ** 0.5)
    assert c.activation == "gelu" and not c.gated_linear_unit
    assert c.hidden_dropout == 0.1 and c.attention_dropout == 0.1 and c.norm_epsilon == 1e-5
    assert c.params_dtype == torch.float32


def test_swiglu_ffn_size_is_8h_over_3_rounded_down_to_64() -> None:
    assert make(hidden_size=4096, num_attention_heads=32, swiglu=True).ffn_hidden_size == 10880
    c = make(swiglu=True, ffn_hidden_size=128)
    assert c.ffn_hidden_size == 128 and c.gated_linear_unit and c.activation == "silu"


def test_query_key_layer_scaling_forces_softmax_in_fp32() -> None:
    assert make(apply_query_key_layer_scaling=True).attention_softmax_in_fp32


def test_bias_activation_fusion_follows_the_activation() -> None:
    assert make().bias_activation_fusion
    assert not make(add_bias_linear=False).bias_activation_fusion  # bias-gelu needs a bias
    assert not make(openai_gelu=True).bias_activation_fusion
    assert make(swiglu=True, add_bias_linear=False).bias_activation_fusion
    assert not make(swiglu=True, bias_swiglu_fusion=False).bias_activation_fusion


@pytest.mark.parametrize("kind", ["mrope", "relative"])
def test_unimplemented_position_embeddings_raise_a_one_line_error(kind: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match="--position-embedding-type") as info:
        make(position_embedding_type=kind)
    assert isinstance(info.value, NotImplementedError) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"hidden_size": 66}, "--hidden-size"),
        ({"num_query_groups": 3}, "--num-query-groups"),
        ({"normalization": "BatchNorm"}, "--normalization"),
        ({"attention_backend": "magic"}, "--attention-backend"),
        ({"swiglu": True, "squared_relu": True}, "--swiglu"),
        ({"recompute_granularity": "full"}, "--recompute-method"),
        ({"recompute_granularity": "full", "recompute_method": "block"}, "--recompute-num-layers"),
        (
            {"recompute_granularity": "selective", "recompute_modules": ("attn",)},
            "--recompute-modules",
        ),
        ({"no_rope_freq": 3}, "--no-rope-freq"),
        ({"no_rope_freq": (0, 1)}, "--no-rope-freq"),
        ({"rotary_percent": 0.0}, "--rotary-percent"),
        ({"num_layers": 0}, "--num-layers"),
    ],
)
def test_invalid_settings_name_the_flag(overrides: dict, flag: str) -> None:
    with pytest.raises(TransformerConfigError, match=flag):
        make(**overrides)


def test_config_is_frozen_and_replace_rederives_choices() -> None:
    c = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.hidden_size = 8  # type: ignore[misc]
    assert c.replace(num_attention_heads=8).num_attention_heads == 8


def test_no_rope_freq_int_skips_every_nth_layer_and_list_is_a_pattern() -> None:
    every_second = make(position_embedding_type="rope", no_rope_freq=2)
    assert [every_second.rope_skipped(i) for i in range(4)] == [False, True, False, True]
    pattern = make(position_embedding_type="rope", no_rope_freq=[1, 0, 0, 0])
    assert pattern.no_rope_freq == (1, 0, 0, 0)
    assert [s.apply_rope for s in gpt_block_spec(pattern)] == [False, True, True, True]
    assert all(not s.apply_rope for s in gpt_block_spec(make()))  # learned positions: no RoPE


def test_yarn_is_selected_by_position_type_or_rope_type() -> None:
    assert make(position_embedding_type="yarn").uses_yarn
    assert make(position_embedding_type="rope", rope_type="yarn").uses_yarn
    assert not make(position_embedding_type="rope", rope_type="rope").uses_yarn
    with pytest.raises(TransformerConfigError, match="interleaved"):
        make(position_embedding_type="yarn", rotary_interleaved=True)


def test_layer_spec_rejects_mixers_that_do_not_exist_yet() -> None:
    with pytest.raises(NotImplementedError, match="mamba"):
        LayerSpec(mixer="mamba")
