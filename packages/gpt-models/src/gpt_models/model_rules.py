"""The model-shape rules, each written once: validation and TransformerConfig both call these.

The original checks and derives the model's shape in ``validate_args`` and again in
``TransformerConfig.__post_init__``; here each rule has one owner, a function over gpt-models'
flag classes that returns the class with the derived values filled in (``ffn_hidden_size``,
``kv_channels``, ...). Every failure is one line naming the flags at fault.
"""

from __future__ import annotations

import dataclasses

from gpt_models.config import (
    ArchitectureConfig,
    DropoutConfig,
    InitConfig,
    LayerOptionsConfig,
    NumericsConfig,
    QKNormConfig,
)


class TransformerConfigError(ValueError):
    """A model setting that cannot work; the message names the flag and the value."""


class UnsupportedFeatureError(TransformerConfigError, NotImplementedError):
    """A valid setting of the original that this model does not implement."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise TransformerConfigError(message)


def swiglu_ffn_hidden_size(hidden_size: int) -> int:
    """The original's default for --swiglu: 8h/3 rounded down to a multiple of 64."""
    return int((4 * hidden_size * 2 / 3) / 64) * 64


def resolve_architecture(arch: ArchitectureConfig) -> ArchitectureConfig:
    """Required sizes, ffn size, kv channels, query groups and the activation: checked, derived."""
    for name in ("num_layers", "hidden_size", "num_attention_heads", "max_position_embeddings"):
        value = getattr(arch, name)
        flag_name = "--" + name.replace("_", "-")
        _require(value is not None, f"{flag_name} is required")
        _require(isinstance(value, int) and value > 0, f"{flag_name} must be positive, got {value}")
    h, heads = arch.hidden_size, arch.num_attention_heads
    ffn = arch.ffn_hidden_size
    if ffn is None:
        ffn = swiglu_ffn_hidden_size(h) if arch.swiglu else 4 * h
    kv = arch.kv_channels
    if kv is None:
        _require(
            h % heads == 0,
            f"--hidden-size ({h}) must be divisible by --num-attention-heads ({heads}) "
            "unless --kv-channels is given",
        )
        kv = h // heads
    groups = arch.num_query_groups if arch.group_query_attention else None
    if groups is not None:
        _require(groups >= 1, "--num-query-groups must be at least 1")
        _require(
            heads % groups == 0,
            f"--num-attention-heads ({heads}) must be divisible by --num-query-groups ({groups})",
        )
    activations = [
        name
        for name, on in (
            ("--swiglu", arch.swiglu),
            ("--squared-relu", arch.squared_relu),
            ("--openai-gelu", arch.openai_gelu),
        )
        if on
    ]
    _require(len(activations) <= 1, f"{' and '.join(activations)} are mutually exclusive")
    _require(
        0.0 < arch.rotary_percent <= 1.0,
        f"--rotary-percent must be in (0, 1], got {arch.rotary_percent}",
    )
    return dataclasses.replace(arch, ffn_hidden_size=ffn, kv_channels=kv, num_query_groups=groups)


def check_qk_norm(qk_norm: QKNormConfig) -> None:
    _require(
        not (qk_norm.qk_layernorm and qk_norm.qk_l2_norm),
        "--qk-layernorm and --qk-l2-norm are mutually exclusive",
    )


def check_dropout(dropout: DropoutConfig) -> None:
    for name in ("hidden_dropout", "attention_dropout"):
        value = getattr(dropout, name)
        flag_name = "--" + name.replace("_", "-")
        _require(0.0 <= value <= 1.0, f"{flag_name} must be in [0, 1], got {value}")


def resolve_qkv_bias(layer: LayerOptionsConfig) -> LayerOptionsConfig:
    """Biases in every linear layer include the qkv bias (the original forces it on)."""
    return dataclasses.replace(layer, add_qkv_bias=True) if layer.add_bias_linear else layer


def resolve_softmax_precision(numerics: NumericsConfig) -> NumericsConfig:
    """Query-key layer scaling needs the softmax in fp32 (the original forces it on)."""
    if numerics.apply_query_key_layer_scaling:
        return dataclasses.replace(numerics, attention_softmax_in_fp32=True)
    return numerics


def resolve_init(init: InitConfig) -> InitConfig:
    """The embedding std defaults to --init-method-std."""
    if init.embedding_init_method_std is None:
        return dataclasses.replace(init, embedding_init_method_std=init.init_method_std)
    return init
