"""HF transformers <-> our GPT model: configs and state dicts for GPT-2, Llama and Qwen2.

Weight layouts:
- our ``linear_qkv`` is group-major: for each query group g, its query heads, then k_g, then v_g
  (``[ng * (nh/ng + 2) * d, h]``); HF keeps separate (or, for GPT-2, concatenated [q; k; v])
  projections. No RoPE permutation is needed: both sides rotate halves.
- swiglu ``linear_fc1`` is ``[gate_proj; up_proj]``.
- GPT-2's Conv1D stores weights transposed ([in, out]).

Activation choice for GPT-2: its ``gelu_new`` is the tanh approximation
``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, which is exactly the original's
``--openai-gelu``; so GPT-2 maps to ``openai_gelu=True`` (bias-GeLU fusion does not apply to it).
Llama-family RMSNorm has no bias, SiLU-gated MLP and RoPE; Qwen2 adds biases to q/k/v only
(``add_qkv_bias``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from gpt_models.transformer_config import TransformerConfig

SUPPORTED_MODEL_TYPES = ("gpt2", "llama", "qwen2")


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
    if c.activation_function != "gelu_new":
        raise HFMappingError(f"GPT-2 activation {c.activation_function!r} (only gelu_new)")
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
        "openai_gelu": True,
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
    """Our TransformerConfig for an HF GPT-2 / Llama / Qwen2 config (``overrides`` win)."""
    kind = getattr(hf_config, "model_type", None)
    if kind == "gpt2":
        fields = _gpt2_config(hf_config)
    elif kind == "llama":
        fields = _llama_like_config(hf_config, qkv_bias_only=False)
    elif kind == "qwen2":
        fields = _llama_like_config(hf_config, qkv_bias_only=True)
    else:
        raise HFMappingError(f"HF model_type {kind!r} is not one of {SUPPORTED_MODEL_TYPES}")
    fields.update(overrides)
    return TransformerConfig.from_flat(**fields)


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


# --------------------------------------------------------------------- GPT-2 ---------
def _gpt2_to_ours(sd: Mapping[str, torch.Tensor], config: TransformerConfig) -> dict[str, Any]:
    p = "transformer."
    heads = config.num_attention_heads
    out: dict[str, Any] = {
        "embedding.word_embeddings.weight": _pad_rows(
            sd[p + "wte.weight"], config.padded_vocab_size
        ),
        "embedding.position_embeddings.weight": sd[p + "wpe.weight"],
        "decoder.final_layernorm.weight": sd[p + "ln_f.weight"],
        "decoder.final_layernorm.bias": sd[p + "ln_f.bias"],
    }
    for i in range(config.num_layers):
        h, o = f"{p}h.{i}.", f"decoder.layers.{i}."
        qkv_w = sd[h + "attn.c_attn.weight"].t()
        qkv_b = sd[h + "attn.c_attn.bias"]
        out |= {
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
    if config.untie_embeddings_and_output_weights:
        out["output_layer.weight"] = _pad_rows(sd["lm_head.weight"], config.padded_vocab_size)
    return out


def _ours_to_gpt2(
    sd: Mapping[str, torch.Tensor], config: TransformerConfig, vocab_size: int
) -> dict[str, torch.Tensor]:
    p = "transformer."
    heads = config.num_attention_heads
    word = sd["embedding.word_embeddings.weight"][:vocab_size]
    out = {
        p + "wte.weight": word,
        p + "wpe.weight": sd["embedding.position_embeddings.weight"],
        p + "ln_f.weight": sd["decoder.final_layernorm.weight"],
        p + "ln_f.bias": sd["decoder.final_layernorm.bias"],
    }
    for i in range(config.num_layers):
        h, o = f"{p}h.{i}.", f"decoder.layers.{i}."
        qw = split_qkv(sd[o + "self_attention.linear_qkv.weight"], heads, heads)
        qb = split_qkv(sd[o + "self_attention.linear_qkv.bias"], heads, heads)
        out |= {
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
    head = sd.get("output_layer.weight")
    out["lm_head.weight"] = word if head is None else head[:vocab_size]
    return out


# ------------------------------------------------------------------- Llama / Qwen2 ---
def _llama_to_ours(sd: Mapping[str, torch.Tensor], config: TransformerConfig) -> dict[str, Any]:
    heads, groups = config.num_attention_heads, config.num_groups
    out: dict[str, Any] = {
        "embedding.word_embeddings.weight": _pad_rows(
            sd["model.embed_tokens.weight"], config.padded_vocab_size
        ),
        "decoder.final_layernorm.weight": sd["model.norm.weight"],
    }
    for i in range(config.num_layers):
        h, o = f"model.layers.{i}.", f"decoder.layers.{i}."
        a = h + "self_attn."
        out |= {
            o + "input_layernorm.weight": sd[h + "input_layernorm.weight"],
            o + "self_attention.linear_qkv.weight": fuse_qkv(
                sd[a + "q_proj.weight"],
                sd[a + "k_proj.weight"],
                sd[a + "v_proj.weight"],
                heads,
                groups,
            ),  # fmt: skip
            o + "self_attention.linear_proj.weight": sd[a + "o_proj.weight"],
            o + "pre_mlp_layernorm.weight": sd[h + "post_attention_layernorm.weight"],
            o + "mlp.linear_fc1.weight": torch.cat(
                (sd[h + "mlp.gate_proj.weight"], sd[h + "mlp.up_proj.weight"])
            ),
            o + "mlp.linear_fc2.weight": sd[h + "mlp.down_proj.weight"],
        }
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
    if config.untie_embeddings_and_output_weights:
        out["output_layer.weight"] = _pad_rows(sd["lm_head.weight"], config.padded_vocab_size)
    return out


def _ours_to_llama(
    sd: Mapping[str, torch.Tensor], config: TransformerConfig, vocab_size: int
) -> dict[str, torch.Tensor]:
    heads, groups = config.num_attention_heads, config.num_groups
    word = sd["embedding.word_embeddings.weight"][:vocab_size]
    out = {
        "model.embed_tokens.weight": word,
        "model.norm.weight": sd["decoder.final_layernorm.weight"],
    }
    for i in range(config.num_layers):
        h, o = f"model.layers.{i}.", f"decoder.layers.{i}."
        a = h + "self_attn."
        q, k, v = split_qkv(sd[o + "self_attention.linear_qkv.weight"], heads, groups)
        gate, up = sd[o + "mlp.linear_fc1.weight"].chunk(2)
        out |= {
            h + "input_layernorm.weight": sd[o + "input_layernorm.weight"],
            a + "q_proj.weight": q,
            a + "k_proj.weight": k,
            a + "v_proj.weight": v,
            a + "o_proj.weight": sd[o + "self_attention.linear_proj.weight"],
            h + "post_attention_layernorm.weight": sd[o + "pre_mlp_layernorm.weight"],
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
    head = sd.get("output_layer.weight")
    out["lm_head.weight"] = word if head is None else head[:vocab_size]
    return out


# ----------------------------------------------------------------------- public ---
def hf_to_gpt_state_dict(
    hf_state_dict: Mapping[str, torch.Tensor], hf_config: Any, config: TransformerConfig
) -> dict[str, Any]:
    """An HF state dict -> our (local-spec) state dict; the vocab is zero-padded if needed."""
    kind = getattr(hf_config, "model_type", None)
    if kind == "gpt2":
        return _gpt2_to_ours(hf_state_dict, config)
    if kind in ("llama", "qwen2"):
        return _llama_to_ours(hf_state_dict, config)
    raise HFMappingError(f"HF model_type {kind!r} is not one of {SUPPORTED_MODEL_TYPES}")


def gpt_to_hf_state_dict(
    state_dict: Mapping[str, torch.Tensor], hf_config: Any, config: TransformerConfig
) -> dict[str, torch.Tensor]:
    """Our state dict -> an HF state dict for ``hf_config`` (padded vocab rows dropped)."""
    kind = getattr(hf_config, "model_type", None)
    if kind == "gpt2":
        return _ours_to_gpt2(state_dict, config, hf_config.vocab_size)
    if kind in ("llama", "qwen2"):
        return _ours_to_llama(state_dict, config, hf_config.vocab_size)
    raise HFMappingError(f"HF model_type {kind!r} is not one of {SUPPORTED_MODEL_TYPES}")
