"""State-dict names of the original's GPT model: local spec (ours) and Transformer Engine spec.

Our modules carry the original's ``--transformer-impl local`` names. The Transformer Engine
spec fuses each pre-norm into the following linear layer, so its checkpoints say
``self_attention.linear_qkv.layer_norm_{weight,bias}`` for ``input_layernorm.{weight,bias}``
and ``mlp.linear_fc1.layer_norm_{weight,bias}`` for ``pre_mlp_layernorm.{weight,bias}``, and
TE's attention module adds ``self_attention.core_attention._extra_state``. An MoE layer keeps
``pre_mlp_layernorm`` in both (its MLP is no fused linear), and TE's grouped-GEMM experts say
``mlp.experts.linear_fc1.weight{j}`` for ``mlp.experts.local_experts.{j}.linear_fc1.weight``. MTP
layers (``mtp.layers.{k}.transformer_layer.``) are renamed like decoder layers. The functions
here convert between the two and load either into a ``GPTModel``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import nn

_LAYER = re.compile(
    r"^(?P<prefix>.*(?:decoder\.layers\.\d+|mtp\.layers\.\d+\.transformer_layer)\.)(?P<rest>.+)$"
)
# Transformer Engine's grouped-GEMM experts: ``mlp.experts.linear_fc1.weight3`` is local expert 3.
_TE_GROUPED_EXPERT = re.compile(
    r"^(?P<prefix>.*\.mlp\.experts\.)(?P<linear>linear_fc[12])\.(?P<kind>weight|_extra_state)(?P<j>\d*)$"
)
_ROUTER = "mlp.router.weight"
_LOCAL_TO_TE = (
    ("input_layernorm.", "self_attention.linear_qkv.layer_norm_"),
    ("pre_mlp_layernorm.", "mlp.linear_fc1.layer_norm_"),
)
_TE_ONLY_EXTRA_STATE = "self_attention.core_attention._extra_state"
EXTRA_STATE_SUFFIX = "._extra_state"


def _rename_layer_key(
    key: str, pairs: tuple[tuple[str, str], ...], moe_prefixes: frozenset[str] = frozenset()
) -> str:
    match = _LAYER.match(key)
    if not match:
        return key
    rest = match["rest"]
    for old, new in pairs:
        if match["prefix"] in moe_prefixes and "pre_mlp_layernorm." in (old, new):
            continue  # an MoE layer keeps its own pre-MLP norm in both specs
        if rest.startswith(old):
            return match["prefix"] + new + rest[len(old) :]
    return key


def uses_te_names(state_dict: Mapping[str, Any]) -> bool:
    """Whether a state dict carries the Transformer Engine spec's fused-norm names."""
    return any(".layer_norm_weight" in key for key in state_dict)


def to_te_names(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Local-spec names -> Transformer Engine names (adds TE's attention ``_extra_state``)."""
    out: dict[str, Any] = {}
    layer_prefixes: list[str] = []
    moe = _moe_prefixes(state_dict)
    for key, value in state_dict.items():
        match = _LAYER.match(key)
        if match and match["prefix"] not in layer_prefixes:
            layer_prefixes.append(match["prefix"])
        out[_rename_layer_key(key, _LOCAL_TO_TE, moe)] = value
    for prefix in layer_prefixes:
        out.setdefault(prefix + _TE_ONLY_EXTRA_STATE, None)
    return out


def from_te_names(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Transformer Engine names -> local-spec names (drops TE-only ``_extra_state``)."""
    inverse = tuple((new, old) for old, new in _LOCAL_TO_TE)
    moe = _moe_prefixes(state_dict)
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.endswith(_TE_ONLY_EXTRA_STATE):
            continue
        grouped = _TE_GROUPED_EXPERT.match(key)
        if grouped and grouped["j"]:
            if grouped["kind"] == "weight":
                name = f"{grouped['prefix']}local_experts.{grouped['j']}.{grouped['linear']}.weight"
                out[name] = value
            continue
        if grouped:  # the grouped linear's own _extra_state
            continue
        out[_rename_layer_key(key, inverse, moe)] = value
    return out


def _moe_prefixes(state_dict: Mapping[str, Any]) -> frozenset[str]:
    """The layer prefixes (``decoder.layers.3.``) whose MLP is an MoE layer."""
    return frozenset(key[: -len(_ROUTER)] for key in state_dict if key.endswith(_ROUTER))


def to_local_names(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Either naming -> our (local-spec) naming."""
    return from_te_names(state_dict) if uses_te_names(state_dict) else dict(state_dict)


def load_original_state_dict(
    model: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True
) -> None:
    """Load an original model state dict (local or TE names) into our model.

    ``_extra_state`` entries are matched leniently: ones our model does not have are dropped,
    missing ones are filled with None. Every weight must match when ``strict``.
    """
    wanted = model.state_dict(keep_vars=True)
    sd = to_local_names(state_dict)
    sd = {k: v for k, v in sd.items() if not k.endswith(EXTRA_STATE_SUFFIX) or k in wanted}
    for key in wanted:
        if key.endswith(EXTRA_STATE_SUFFIX):
            sd.setdefault(key, None)
    result = model.load_state_dict(sd, strict=strict)
    if not strict:
        return
    if result.missing_keys or result.unexpected_keys:  # pragma: no cover - strict raises first
        raise KeyError(f"state dict mismatch: {result}")
