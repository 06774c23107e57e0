"""HF transformers <-> our GPT model: configs and state dicts for GPT-2, Llama, Mistral, Qwen2.

Weight layouts:
- our ``linear_qkv`` is group-major: for each query group g, its query heads, then k_g, then v_g
  (``[ng * (nh/ng + 2) * d, h]``); HF keeps separate (or, for GPT-2, concatenated [q; k; v])
  projections. No RoPE permutation is needed: both sides rotate halves.
- swiglu ``linear_fc1`` is ``[gate_proj; up_proj]``.
- GPT-2's Conv1D stores weights transposed ([in, out]).

Activation choice for GPT-2: its ``gelu_new`` is the tanh approximation
``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, which is exactly the original's
``--openai-gelu``; so GPT-2 maps to ``openai_gelu=True`` (bias-GeLU fusion does not apply to it).
HF's ``gelu`` (exact erf GeLU) is the original's gelu without bias-GeLU fusion (the fused kernel
uses the tanh formula, so a fused model maps back to ``gelu_new``).
Llama-family RMSNorm has no bias, SiLU-gated MLP and RoPE; Mistral is Llama without biases
(its sliding window is not applied: sequences up to the window give the same result); Qwen2
adds biases to q/k/v only (``add_qkv_bias``). Mixtral is Mistral with every MLP a mixture of
experts: its ``gate`` is our ``mlp.router``, and expert e's ``[w1; w3]`` / ``w2`` (in the
files; transformers 5 fuses them in memory as ``gate_up_proj[e]`` / ``down_proj[e]``, read as
well) are our ``mlp.experts.local_experts.e.linear_fc1`` / ``linear_fc2`` (softmax over the top-k logits,
which is the original's default router).

State dicts map part by part (``hf_part_to_gpt`` / ``gpt_part_to_hf``), so a converter holds
one layer at a time; the whole-dict functions are built from the parts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import torch

from gpt_models.transformer_config import TransformerConfig

SUPPORTED_MODEL_TYPES = ("gpt2", "llama", "mistral", "qwen2", "mixtral")


class HFMappingError(ValueError):
    """An HF config or checkpoint that our model cannot represent exactly."""


# ------------------------------------------------------------------------ configs ---
def _rope_parameters(hf_config: Any) -> dict[str, Any]:
    """HF's rope settings, from ``rope_parameters`` (transformers 5) or rope_theta/rope_scaling."""
    params = dict(getattr(hf_config, "rope_parameters", None) or {})
    scaling = getattr(hf_config, "rope_scaling", None)
    if scaling and not params.get("rope_type"):
        params.update(scaling)
    params.setdefault("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    if "type" in params and "rope_type" not in params:
        params["rope_type"] = params["type"]
    params.setdefault("rope_type", "default")
    return params


def _rope_fields(hf_config: Any) -> dict[str, Any]:
    params = _rope_parameters(hf_config)
    theta = params["rope_theta"]
    fields: dict[str, Any] = {
        "position_embedding_type": "rope",
        "rotary_base": int(theta) if float(theta).is_integer() else theta,
        "rotary_percent": float(params.get("partial_rotary_factor", 1.0)),
    }
    kind = params["rope_type"]
    if kind == "default":
        return fields
    if kind == "linear":
        return fields | {"rotary_seq_len_interpolation_factor": float(params["factor"])}
    if kind == "llama3":
        fixed = {"low_freq_factor": 1.0, "high_freq_factor": 4.0}
        for name, value in fixed.items():
            if float(params.get(name, value)) != value:
                raise HFMappingError(f"llama3 rope {name}={params[name]} (only {value} supported)")
        if int(params.get("original_max_position_embeddings", 8192)) != 8192:
            raise HFMappingError("llama3 rope original_max_position_embeddings must be 8192")
        return fields | {"use_rope_scaling": True, "rope_scaling_factor": float(params["factor"])}
    if kind == "yarn":
        if params.get("attention_factor") is not None:
            raise HFMappingError("yarn rope with an explicit attention_factor is not supported")
        original = params.get("original_max_position_embeddings") or getattr(
            hf_config, "max_position_embeddings", None
        )
        return fields | {
            "rope_type": "yarn",
            "rotary_scaling_factor": float(params["factor"]),
            "mscale": params.get("mscale"),
            "mscale_all_dim": params.get("mscale_all_dim"),
            "yarn_original_max_position_embeddings": int(original),
            "yarn_beta_fast": float(params.get("beta_fast") or 32.0),
            "yarn_beta_slow": float(params.get("beta_slow") or 1.0),
            "yarn_correction_range_round_to_int": bool(params.get("truncate", True)),
        }
    raise HFMappingError(f"rope_type {kind!r} is not supported")


def _gpt2_config(c: Any) -> dict[str, Any]:
    if c.activation_function not in ("gelu_new", "gelu"):
        raise HFMappingError(f"GPT-2 activation {c.activation_function!r} (only gelu_new, gelu)")
    if not c.scale_attn_weights or c.scale_attn_by_inverse_layer_idx:
        raise HFMappingError("GPT-2 attention scaling other than 1/sqrt(d) is not supported")
    return {
        "num_layers": c.n_layer,
        "hidden_size": c.n_embd,
        "num_attention_heads": c.n_head,
        "ffn_hidden_size": c.n_inner or 4 * c.n_embd,
        "max_position_embeddings": c.n_positions,
        "padded_vocab_size": c.vocab_size,
        "normalization": "LayerNorm",
        "norm_epsilon": c.layer_norm_epsilon,
        "openai_gelu": c.activation_function == "gelu_new",
        "bias_gelu_fusion": False,
        "add_bias_linear": True,
        "position_embedding_type": "learned_absolute",
        "untie_embeddings_and_output_weights": not c.tie_word_embeddings,
        "hidden_dropout": c.resid_pdrop,
        "attention_dropout": c.attn_pdrop,
    }


def _llama_like_config(c: Any, qkv_bias_only: bool) -> dict[str, Any]:
    if c.hidden_act != "silu":
        raise HFMappingError(f"hidden_act {c.hidden_act!r} (only silu)")
    if qkv_bias_only:
        add_bias_linear, add_qkv_bias = False, True
        if getattr(c, "use_sliding_window", False):
            raise HFMappingError("Qwen2 sliding-window attention is not supported")
    else:
        attention_bias = bool(getattr(c, "attention_bias", False))
        mlp_bias = bool(getattr(c, "mlp_bias", False))
        if attention_bias != mlp_bias:
            raise HFMappingError("attention_bias and mlp_bias must agree (--disable-bias-linear)")
        add_bias_linear, add_qkv_bias = attention_bias, attention_bias
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    groups = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    return {
        "num_layers": c.num_hidden_layers,
        "hidden_size": c.hidden_size,
        "num_attention_heads": c.num_attention_heads,
        "num_query_groups": None if groups == c.num_attention_heads else groups,
        "kv_channels": head_dim,
        "ffn_hidden_size": c.intermediate_size,
        "max_position_embeddings": c.max_position_embeddings,
        "padded_vocab_size": c.vocab_size,
        "normalization": "RMSNorm",
        "norm_epsilon": c.rms_norm_eps,
        "swiglu": True,
        "add_bias_linear": add_bias_linear,
        "add_qkv_bias": add_qkv_bias,
        "untie_embeddings_and_output_weights": not c.tie_word_embeddings,
        "hidden_dropout": 0.0,
        "attention_dropout": float(getattr(c, "attention_dropout", 0.0)),
        **_rope_fields(c),
    }


def transformer_config_from_hf(hf_config: Any, **overrides: Any) -> TransformerConfig:
    """Our TransformerConfig for an HF GPT-2 / Llama / Mistral / Qwen2 config (``overrides``
    win)."""
    kind = getattr(hf_config, "model_type", None)
    if kind == "gpt2":
        fields = _gpt2_config(hf_config)
    elif kind in ("llama", "mistral"):
        fields = _llama_like_config(hf_config, qkv_bias_only=False)
    elif kind == "qwen2":
        fields = _llama_like_config(hf_config, qkv_bias_only=True)
    elif kind == "mixtral":
        fields = _llama_like_config(hf_config, qkv_bias_only=False) | {
            "num_experts": hf_config.num_local_experts,
            "moe_router_topk": hf_config.num_experts_per_tok,
            "moe_ffn_hidden_size": hf_config.intermediate_size,
            "moe_aux_loss_coeff": float(getattr(hf_config, "router_aux_loss_coef", 0.0) or 0.0),
        }
    else:
        raise HFMappingError(f"HF model_type {kind!r} is not one of {SUPPORTED_MODEL_TYPES}")
    fields.update(overrides)
    return TransformerConfig.from_flat(**fields)


# ---------------------------------------------------------------- config.json -------
_HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": {
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "n_inner": None,
        "n_positions": 1024,
        "resid_pdrop": 0.1,
        "attn_pdrop": 0.1,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "tie_word_embeddings": True,
    },
    "llama": {
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
    },
    "mistral": {
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "max_position_embeddings": 4096 * 32,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
    },
    "mixtral": {
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "max_position_embeddings": 4096 * 32,
        "rope_theta": 1e6,
        "sliding_window": None,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "router_jitter_noise": 0.0,
        "router_aux_loss_coef": 0.001,
    },
    "qwen2": {
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
        "rope_theta": 10000.0,
        "use_sliding_window": False,
    },
}
"""The transformers class defaults of the fields read here, for config.json files that leave
them out (older transformers wrote only the values that differ from the class defaults)."""


def hf_config_from_dict(values: Mapping[str, Any]) -> SimpleNamespace:
    """An attribute view of a ``config.json`` dict, with transformers' class defaults filled in.

    The converter reads HF directories without importing transformers; this gives the
    mapping functions the same attributes a ``PretrainedConfig`` has.
    """
    kind = values.get("model_type")
    if kind not in _HF_DEFAULTS:
        raise HFMappingError(f"HF model_type {kind!r} is not one of {SUPPORTED_MODEL_TYPES}")
    return SimpleNamespace(**(_HF_DEFAULTS[kind] | dict(values)))


def hf_model_type_for(config: TransformerConfig) -> str:
    """The HF family that represents ``config`` exactly (gpt2, llama or qwen2)."""
    _check_hf_representable(config)
    if config.position_embedding_type == "learned_absolute":
        if config.normalization != "LayerNorm" or config.swiglu or not config.add_bias_linear:
            raise HFMappingError(
                "learned absolute positions map to GPT-2 only with LayerNorm, biases and gelu"
            )
        if config.num_query_groups is not None or config.squared_relu:
            raise HFMappingError("GPT-2 has no grouped-query attention or squared relu")
        if config.kv_channels * config.num_attention_heads != config.hidden_size:
            raise HFMappingError("GPT-2 needs --kv-channels x heads == --hidden-size")
        return "gpt2"
    if config.position_embedding_type != "rope" or config.uses_yarn:
        raise HFMappingError(
            f"--position-embedding-type {config.position_embedding_type} has no HF family here"
        )
    if config.normalization != "RMSNorm" or not config.swiglu:
        raise HFMappingError("rotary models map to Llama/Qwen2 only with RMSNorm and swiglu")
    if getattr(config, "num_experts", None):
        _check_mixtral_like(config)
        return "mixtral"
    if config.add_qkv_bias and not config.add_bias_linear:
        return "qwen2"
    return "llama"


def _check_hf_representable(config: TransformerConfig) -> None:
    unsupported = {
        "apply_layernorm_1p": "--apply-layernorm-1p",
        "apply_residual_connection_post_layernorm": "--apply-residual-connection-post-layernorm",
        "qk_layernorm": "--qk-layernorm",
        "qk_l2_norm": "--qk-l2-norm",
        "rotary_interleaved": "--rotary-interleaved",
        "multi_latent_attention": "--multi-latent-attention",
        "mtp_num_layers": "--mtp-num-layers",
        "no_rope_freq": "--no-rope-freq",
    }
    for name, flag_name in unsupported.items():
        if getattr(config, name):
            raise HFMappingError(f"{flag_name} has no HF transformers equivalent here")
    if config.uses_rope and config.rotary_percent != 1.0:
        raise HFMappingError("--rotary-percent other than 1.0 has no HF Llama equivalent")


def _check_mixtral_like(config: TransformerConfig) -> None:
    """Mixtral's MoE: every layer, softmax over the top-k logits, no shared expert or bias."""
    if config.add_bias_linear or config.add_qkv_bias:
        raise HFMappingError("Mixtral has no linear biases (--disable-bias-linear)")
    plain = {
        "moe_layer_freq": 1,
        "moe_shared_expert_intermediate_size": None,
        "moe_router_score_function": "softmax",
        "moe_router_pre_softmax": False,
        "moe_router_topk_scaling_factor": None,
        "moe_router_enable_expert_bias": False,
        "moe_router_num_groups": None,
    }
    for name, value in plain.items():
        if getattr(config, name, value) != value:
            flag_name = "--" + name.replace("_", "-")
            raise HFMappingError(f"{flag_name} {getattr(config, name)!r} has no Mixtral equivalent")


def _rope_config(config: TransformerConfig) -> dict[str, Any]:
    params: dict[str, Any] = {"rope_theta": float(config.rotary_base), "rope_type": "default"}
    if config.use_rope_scaling:
        params |= {
            "rope_type": "llama3",
            "factor": float(config.rope_scaling_factor),
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
    elif config.rotary_seq_len_interpolation_factor:
        params |= {
            "rope_type": "linear",
            "factor": float(config.rotary_seq_len_interpolation_factor),
        }
    legacy = {"rope_theta": params["rope_theta"]}
    if params["rope_type"] != "default":
        legacy["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    return {"rope_parameters": params, **legacy}


def hf_config_dict(
    config: TransformerConfig,
    vocab_size: int,
    *,
    model_type: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """The ``config.json`` of the HF model that ``config`` is (``model_type`` None: pick one).

    Written with both the transformers 5 ``rope_parameters`` and the older ``rope_theta`` /
    ``rope_scaling`` keys, so either version reads it.
    """
    kind = model_type or hf_model_type_for(config)
    if model_type is not None:
        hf_model_type_for(config)  # the same checks
    dtype_name = str(dtype).removeprefix("torch.")
    tie = not config.untie_embeddings_and_output_weights
    if kind == "gpt2":
        gelu = "gelu_new" if config.openai_gelu or config.bias_activation_fusion else "gelu"
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": vocab_size,
            "n_embd": config.hidden_size,
            "n_layer": config.num_layers,
            "n_head": config.num_attention_heads,
            "n_inner": config.ffn_hidden_size,
            "n_positions": config.max_position_embeddings,
            "activation_function": gelu,
            "layer_norm_epsilon": config.norm_epsilon,
            "resid_pdrop": config.hidden_dropout,
            "embd_pdrop": config.hidden_dropout,
            "attn_pdrop": config.attention_dropout,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
            "tie_word_embeddings": tie,
            "dtype": dtype_name,
        }
    if kind not in ("llama", "mistral", "qwen2", "mixtral"):
        raise HFMappingError(f"HF model_type {kind!r} is not one of {SUPPORTED_MODEL_TYPES}")
    if kind == "qwen2" and (config.add_bias_linear or not config.add_qkv_bias):
        raise HFMappingError(
            "Qwen2 has biases on q/k/v only (--add-qkv-bias --disable-bias-linear)"
        )
    if kind == "mistral" and config.add_qkv_bias:
        raise HFMappingError("Mistral has no linear biases (--disable-bias-linear)")
    if (kind == "mixtral") != bool(getattr(config, "num_experts", None)):
        raise HFMappingError("only Mixtral holds experts (--num-experts)")
    out: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[kind]],
        "model_type": kind,
        "vocab_size": vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.ffn_hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_groups,
        "head_dim": config.kv_channels,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.norm_epsilon,
        "attention_dropout": config.attention_dropout,
        "tie_word_embeddings": tie,
        "dtype": dtype_name,
        **_rope_config(config),
    }
    if kind == "llama":
        out |= {"attention_bias": config.add_bias_linear, "mlp_bias": config.add_bias_linear}
    if kind == "mistral":
        out["sliding_window"] = None
    if kind == "mixtral":
        coeff = config.moe_aux_loss_coeff
        out |= {
            "sliding_window": None,
            "intermediate_size": config.moe_ffn_hidden_size,
            "num_local_experts": config.num_experts,
            "num_experts_per_tok": config.moe_router_topk,
            "router_aux_loss_coef": float(coeff[0] if isinstance(coeff, list | tuple) else coeff),
            "router_jitter_noise": 0.0,
        }
    if kind == "qwen2":
        out |= {"use_sliding_window": False, "sliding_window": None}
    return out


_ARCHITECTURES = {
    "mixtral": "MixtralForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}


# --------------------------------------------------------------------- QKV layout ---
def fuse_qkv(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, num_groups: int
) -> torch.Tensor:
    """Separate q [nh*d, ...], k/v [ng*d, ...] -> our group-major linear_qkv rows."""
    d = q.shape[0] // num_heads
    per_group = num_heads // num_groups
    rest = q.shape[1:]
    q = q.reshape(num_groups, per_group * d, *rest)
    k = k.reshape(num_groups, d, *rest)
    v = v.reshape(num_groups, d, *rest)
    return torch.cat((q, k, v), dim=1).reshape(-1, *rest)


def split_qkv(
    qkv: torch.Tensor, num_heads: int, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Our group-major linear_qkv rows -> q [nh*d, ...], k and v [ng*d, ...]."""
    per_group = num_heads // num_groups
    d = qkv.shape[0] // (num_groups * (per_group + 2))
    rest = qkv.shape[1:]
    grouped = qkv.reshape(num_groups, (per_group + 2) * d, *rest)
    q, k, v = torch.split(grouped, [per_group * d, d, d], dim=1)
    return q.reshape(-1, *rest), k.reshape(-1, *rest), v.reshape(-1, *rest)


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    if t.shape[0] == rows:
        return t
    if t.shape[0] > rows:
        raise HFMappingError(f"HF vocab {t.shape[0]} is larger than padded vocab {rows}")
    return torch.cat((t, t.new_zeros(rows - t.shape[0], *t.shape[1:])))


# ------------------------------------------------------------------ state dicts ---
# A model travels as parts, in the original converter's message order: ``embeddings``,
# ``transformer layer N`` (N = 0 .. num_layers-1), ``final norm``, and ``output layer`` when
# the output weights are untied. Each part is a dict in our names with the global layer
# index; converting part by part lets a converter stream a model one layer at a time.
EMBEDDINGS = "embeddings"
FINAL_NORM = "final norm"
OUTPUT_LAYER = "output layer"
_LAYER_PART = re.compile(r"^transformer layer (\d+)$")


def layer_part(index: int) -> str:
    """The part name of transformer layer ``index`` (0-based, global)."""
    return f"transformer layer {index}"


def layer_of_part(name: str) -> int | None:
    """The layer index of a ``transformer layer N`` part, None for the other parts."""
    match = _LAYER_PART.match(name)
    return int(match[1]) if match else None


def part_names(config: TransformerConfig) -> list[str]:
    """Every part of a model with ``config``, in order."""
    names = [EMBEDDINGS, *(layer_part(i) for i in range(config.num_layers)), FINAL_NORM]
    return names + ([OUTPUT_LAYER] if config.untie_embeddings_and_output_weights else [])


def _family(hf_config: Any) -> str:
    kind = getattr(hf_config, "model_type", None)
    if kind == "gpt2":
        return "gpt2"
    if kind in ("llama", "mistral", "qwen2", "mixtral"):
        return "llama"
    raise HFMappingError(f"HF model_type {kind!r} is not one of {SUPPORTED_MODEL_TYPES}")


def _gpt2_part_to_ours(
    name: str, sd: Mapping[str, torch.Tensor], config: TransformerConfig
) -> dict[str, Any]:
    p = "transformer."
    heads = config.num_attention_heads
    if name == EMBEDDINGS:
        return {
            "embedding.word_embeddings.weight": _pad_rows(
                sd[p + "wte.weight"], config.padded_vocab_size
            ),
            "embedding.position_embeddings.weight": sd[p + "wpe.weight"],
        }
    if name == FINAL_NORM:
        return {
            "decoder.final_layernorm.weight": sd[p + "ln_f.weight"],
            "decoder.final_layernorm.bias": sd[p + "ln_f.bias"],
        }
    if name == OUTPUT_LAYER:
        return {"output_layer.weight": _pad_rows(sd["lm_head.weight"], config.padded_vocab_size)}
    i = layer_of_part(name)
    h, o = f"{p}h.{i}.", f"decoder.layers.{i}."
    qkv_w = sd[h + "attn.c_attn.weight"].t()
    qkv_b = sd[h + "attn.c_attn.bias"]
    return {
        o + "input_layernorm.weight": sd[h + "ln_1.weight"],
        o + "input_layernorm.bias": sd[h + "ln_1.bias"],
        o + "self_attention.linear_qkv.weight": fuse_qkv(*qkv_w.chunk(3), heads, heads),
        o + "self_attention.linear_qkv.bias": fuse_qkv(*qkv_b.chunk(3), heads, heads),
        o + "self_attention.linear_proj.weight": sd[h + "attn.c_proj.weight"].t(),
        o + "self_attention.linear_proj.bias": sd[h + "attn.c_proj.bias"],
        o + "pre_mlp_layernorm.weight": sd[h + "ln_2.weight"],
        o + "pre_mlp_layernorm.bias": sd[h + "ln_2.bias"],
        o + "mlp.linear_fc1.weight": sd[h + "mlp.c_fc.weight"].t(),
        o + "mlp.linear_fc1.bias": sd[h + "mlp.c_fc.bias"],
        o + "mlp.linear_fc2.weight": sd[h + "mlp.c_proj.weight"].t(),
        o + "mlp.linear_fc2.bias": sd[h + "mlp.c_proj.bias"],
    }


def _ours_part_to_gpt2(
    name: str, sd: Mapping[str, torch.Tensor], config: TransformerConfig, vocab_size: int
) -> dict[str, torch.Tensor]:
    p = "transformer."
    heads = config.num_attention_heads
    if name == EMBEDDINGS:
        return {
            p + "wte.weight": sd["embedding.word_embeddings.weight"][:vocab_size],
            p + "wpe.weight": sd["embedding.position_embeddings.weight"],
        }
    if name == FINAL_NORM:
        return {
            p + "ln_f.weight": sd["decoder.final_layernorm.weight"],
            p + "ln_f.bias": sd["decoder.final_layernorm.bias"],
        }
    if name == OUTPUT_LAYER:
        return {"lm_head.weight": sd["output_layer.weight"][:vocab_size]}
    i = layer_of_part(name)
    h, o = f"{p}h.{i}.", f"decoder.layers.{i}."
    qw = split_qkv(sd[o + "self_attention.linear_qkv.weight"], heads, heads)
    qb = split_qkv(sd[o + "self_attention.linear_qkv.bias"], heads, heads)
    return {
        h + "ln_1.weight": sd[o + "input_layernorm.weight"],
        h + "ln_1.bias": sd[o + "input_layernorm.bias"],
        h + "attn.c_attn.weight": torch.cat(qw).t().contiguous(),
        h + "attn.c_attn.bias": torch.cat(qb),
        h + "attn.c_proj.weight": sd[o + "self_attention.linear_proj.weight"].t().contiguous(),
        h + "attn.c_proj.bias": sd[o + "self_attention.linear_proj.bias"],
        h + "ln_2.weight": sd[o + "pre_mlp_layernorm.weight"],
        h + "ln_2.bias": sd[o + "pre_mlp_layernorm.bias"],
        h + "mlp.c_fc.weight": sd[o + "mlp.linear_fc1.weight"].t().contiguous(),
        h + "mlp.c_fc.bias": sd[o + "mlp.linear_fc1.bias"],
        h + "mlp.c_proj.weight": sd[o + "mlp.linear_fc2.weight"].t().contiguous(),
        h + "mlp.c_proj.bias": sd[o + "mlp.linear_fc2.bias"],
    }


def _llama_part_to_ours(
    name: str, sd: Mapping[str, torch.Tensor], config: TransformerConfig
) -> dict[str, Any]:
    heads, groups = config.num_attention_heads, config.num_groups
    if name == EMBEDDINGS:
        return {
            "embedding.word_embeddings.weight": _pad_rows(
                sd["model.embed_tokens.weight"], config.padded_vocab_size
            )
        }
    if name == FINAL_NORM:
        return {"decoder.final_layernorm.weight": sd["model.norm.weight"]}
    if name == OUTPUT_LAYER:
        return {"output_layer.weight": _pad_rows(sd["lm_head.weight"], config.padded_vocab_size)}
    i = layer_of_part(name)
    h, o = f"model.layers.{i}.", f"decoder.layers.{i}."
    a = h + "self_attn."
    out: dict[str, Any] = {
        o + "input_layernorm.weight": sd[h + "input_layernorm.weight"],
        o + "self_attention.linear_qkv.weight": fuse_qkv(
            sd[a + "q_proj.weight"], sd[a + "k_proj.weight"], sd[a + "v_proj.weight"], heads, groups
        ),
        o + "self_attention.linear_proj.weight": sd[a + "o_proj.weight"],
        o + "pre_mlp_layernorm.weight": sd[h + "post_attention_layernorm.weight"],
    }
    if getattr(config, "num_experts", None):
        fused = h + "mlp.experts.gate_up_proj"
        if fused in sd:  # transformers 5's in-memory layout: [E, 2 ffn, h] and [E, h, ffn]
            out[o + "mlp.router.weight"] = sd[h + "mlp.gate.weight"]
            gate_up, down = sd[fused], sd[h + "mlp.experts.down_proj"]
            for e in range(config.num_experts):
                y = f"{o}mlp.experts.local_experts.{e}."
                out[y + "linear_fc1.weight"] = gate_up[e]
                out[y + "linear_fc2.weight"] = down[e]
            return out
        moe = h + "block_sparse_moe."  # the files' layout (save_pretrained writes it)
        out[o + "mlp.router.weight"] = sd[moe + "gate.weight"]
        for e in range(config.num_experts):
            x, y = f"{moe}experts.{e}.", f"{o}mlp.experts.local_experts.{e}."
            out[y + "linear_fc1.weight"] = torch.cat((sd[x + "w1.weight"], sd[x + "w3.weight"]))
            out[y + "linear_fc2.weight"] = sd[x + "w2.weight"]
    else:
        out[o + "mlp.linear_fc1.weight"] = torch.cat(
            (sd[h + "mlp.gate_proj.weight"], sd[h + "mlp.up_proj.weight"])
        )
        out[o + "mlp.linear_fc2.weight"] = sd[h + "mlp.down_proj.weight"]
    if config.add_qkv_bias:
        out[o + "self_attention.linear_qkv.bias"] = fuse_qkv(
            sd[a + "q_proj.bias"], sd[a + "k_proj.bias"], sd[a + "v_proj.bias"], heads, groups
        )
    if config.add_bias_linear:
        out[o + "self_attention.linear_proj.bias"] = sd[a + "o_proj.bias"]
        out[o + "mlp.linear_fc1.bias"] = torch.cat(
            (sd[h + "mlp.gate_proj.bias"], sd[h + "mlp.up_proj.bias"])
        )
        out[o + "mlp.linear_fc2.bias"] = sd[h + "mlp.down_proj.bias"]
    return out


def _ours_part_to_llama(
    name: str, sd: Mapping[str, torch.Tensor], config: TransformerConfig, vocab_size: int
) -> dict[str, torch.Tensor]:
    heads, groups = config.num_attention_heads, config.num_groups
    if name == EMBEDDINGS:
        return {"model.embed_tokens.weight": sd["embedding.word_embeddings.weight"][:vocab_size]}
    if name == FINAL_NORM:
        return {"model.norm.weight": sd["decoder.final_layernorm.weight"]}
    if name == OUTPUT_LAYER:
        return {"lm_head.weight": sd["output_layer.weight"][:vocab_size]}
    i = layer_of_part(name)
    h, o = f"model.layers.{i}.", f"decoder.layers.{i}."
    a = h + "self_attn."
    q, k, v = split_qkv(sd[o + "self_attention.linear_qkv.weight"], heads, groups)
    out = {
        h + "input_layernorm.weight": sd[o + "input_layernorm.weight"],
        a + "q_proj.weight": q,
        a + "k_proj.weight": k,
        a + "v_proj.weight": v,
        a + "o_proj.weight": sd[o + "self_attention.linear_proj.weight"],
        h + "post_attention_layernorm.weight": sd[o + "pre_mlp_layernorm.weight"],
    }
    if getattr(config, "num_experts", None):
        moe = h + "block_sparse_moe."
        out[moe + "gate.weight"] = sd[o + "mlp.router.weight"]
        for e in range(config.num_experts):
            x, y = f"{moe}experts.{e}.", f"{o}mlp.experts.local_experts.{e}."
            w1, w3 = sd[y + "linear_fc1.weight"].chunk(2)
            out |= {
                x + "w1.weight": w1,
                x + "w3.weight": w3,
                x + "w2.weight": sd[y + "linear_fc2.weight"],
            }
    else:
        gate, up = sd[o + "mlp.linear_fc1.weight"].chunk(2)
        out |= {
            h + "mlp.gate_proj.weight": gate,
            h + "mlp.up_proj.weight": up,
            h + "mlp.down_proj.weight": sd[o + "mlp.linear_fc2.weight"],
        }
    if config.add_qkv_bias:
        qb, kb, vb = split_qkv(sd[o + "self_attention.linear_qkv.bias"], heads, groups)
        out |= {a + "q_proj.bias": qb, a + "k_proj.bias": kb, a + "v_proj.bias": vb}
    if config.add_bias_linear:
        gate_b, up_b = sd[o + "mlp.linear_fc1.bias"].chunk(2)
        out |= {
            a + "o_proj.bias": sd[o + "self_attention.linear_proj.bias"],
            h + "mlp.gate_proj.bias": gate_b,
            h + "mlp.up_proj.bias": up_b,
            h + "mlp.down_proj.bias": sd[o + "mlp.linear_fc2.bias"],
        }
    return {key: value.contiguous() for key, value in out.items()}


# ----------------------------------------------------------------------- public ---
def hf_part_to_gpt(
    name: str, hf_state_dict: Mapping[str, torch.Tensor], hf_config: Any, config: TransformerConfig
) -> dict[str, Any]:
    """Part ``name`` of our state dict, read from an HF state dict (any mapping: a lazy one
    reads only that part's tensors). The vocab is zero-padded to ``padded_vocab_size``."""
    if _family(hf_config) == "gpt2":
        return _gpt2_part_to_ours(name, hf_state_dict, config)
    return _llama_part_to_ours(name, hf_state_dict, config)


def gpt_part_to_hf(
    name: str,
    part: Mapping[str, torch.Tensor],
    hf_config: Any,
    config: TransformerConfig,
) -> dict[str, torch.Tensor]:
    """Part ``name`` (our names) -> HF tensors; padded vocab rows beyond
    ``hf_config.vocab_size`` are dropped. Tied models get no ``lm_head`` here."""
    if _family(hf_config) == "gpt2":
        return _ours_part_to_gpt2(name, part, config, hf_config.vocab_size)
    return _ours_part_to_llama(name, part, config, hf_config.vocab_size)


def hf_to_gpt_state_dict(
    hf_state_dict: Mapping[str, torch.Tensor], hf_config: Any, config: TransformerConfig
) -> dict[str, Any]:
    """An HF state dict -> our (local-spec) state dict; the vocab is zero-padded if needed."""
    _family(hf_config)
    out: dict[str, Any] = {}
    for name in part_names(config):
        out |= hf_part_to_gpt(name, hf_state_dict, hf_config, config)
    return out


def gpt_to_hf_state_dict(
    state_dict: Mapping[str, torch.Tensor], hf_config: Any, config: TransformerConfig
) -> dict[str, torch.Tensor]:
    """Our state dict -> an HF state dict for ``hf_config`` (padded vocab rows dropped); a
    tied model's ``lm_head.weight`` is the word embedding, as HF's state_dict lists it."""
    out: dict[str, torch.Tensor] = {}
    for name in part_names(config):
        out |= gpt_part_to_hf(name, state_dict, hf_config, config)
    if "lm_head.weight" not in out:
        word = (
            "transformer.wte.weight"
            if _family(hf_config) == "gpt2"
            else "model.embed_tokens.weight"
        )
        out["lm_head.weight"] = out[word]
    return out
