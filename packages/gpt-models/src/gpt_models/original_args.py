"""Build a TransformerConfig from the original's parsed arguments (e.g. a checkpoint's ``args``).

The original pickles its whole argparse Namespace into each checkpoint; reading the model
architecture from it is what ``--use-checkpoint-args`` and checkpoint conversion need. Each
part of the config is one of gpt-models' flag classes, filled from the dests it declares (an
older checkpoint that lacks a dest keeps that flag's default); the few values that are not
gpt-models flags (padded vocabulary, parameter dtype) are read explicitly.
"""

from __future__ import annotations

from typing import Any

import torch
from gpt_flags.flagspec import flag_fields

from gpt_models.transformer_config import PARTS, TransformerConfig

_PLAIN = ("padded_vocab_size", "perform_initialization")


def _enum_name(value: Any) -> Any:
    """The member name of an (original or stand-in) enum, or the value itself."""
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else value


def _params_dtype(args: Any) -> torch.dtype:
    dtype = getattr(args, "params_dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    if getattr(args, "bf16", False):
        return torch.bfloat16
    if getattr(args, "fp16", False):
        return torch.float16
    return torch.float32


def transformer_config_from_original_args(args: Any, **overrides: Any) -> TransformerConfig:
    """TransformerConfig from an argparse-like object holding the original's dests.

    ``overrides`` (flag dests or plain fields, e.g. ``attention_backend="flash"``) take the
    place of what ``args`` holds; the model rules then run once, in TransformerConfig.
    """
    values: dict[str, Any] = {}
    for cls in PARTS.values():
        fields = flag_fields(cls)
        values.update({f.name: getattr(args, f.name) for f in fields if hasattr(args, f.name)})
    query_groups = values.pop("num_query_groups", None)
    values["num_query_groups"] = (
        query_groups if values.pop("group_query_attention", False) else None
    )
    if "attention_backend" in values:
        values["attention_backend"] = _enum_name(values["attention_backend"])
    values["params_dtype"] = _params_dtype(args)
    for name in _PLAIN:
        if hasattr(args, name):
            values[name] = getattr(args, name)
    values.update(overrides)
    return TransformerConfig.from_flat(**values)
