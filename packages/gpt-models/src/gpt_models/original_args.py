"""Build a TransformerConfig from the original's parsed arguments (e.g. a checkpoint's ``args``).

The original pickles its whole argparse Namespace into each checkpoint; reading the model
architecture from it is what ``--use-checkpoint-args`` and checkpoint conversion need. Field
names equal the original's dests, so this is mostly a copy of the fields that exist, plus the
few flags that set differently named or several fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from gpt_models.transformer_config import TransformerConfig

# Dests that are not copied verbatim: handled below or not model settings.
_SPECIAL = {"num_query_groups", "attention_backend", "params_dtype", "no_rope_freq"}


def _enum_name(value: Any) -> Any:
    """The member name of an (original or stand-in) enum, or the value itself."""
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else value


def transformer_config_from_original_args(args: Any, **overrides: Any) -> TransformerConfig:
    """TransformerConfig from an argparse-like object holding the original's dests."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TransformerConfig):
        if not f.init or f.name in _SPECIAL or not hasattr(args, f.name):
            continue
        values[f.name] = getattr(args, f.name)
    if getattr(args, "group_query_attention", False):
        values["num_query_groups"] = args.num_query_groups
    if hasattr(args, "attention_backend"):
        values["attention_backend"] = _enum_name(args.attention_backend)
    dtype = getattr(args, "params_dtype", None)
    if isinstance(dtype, torch.dtype):
        values["params_dtype"] = dtype
    elif getattr(args, "bf16", False):
        values["params_dtype"] = torch.bfloat16
    elif getattr(args, "fp16", False):
        values["params_dtype"] = torch.float16
    freq = getattr(args, "no_rope_freq", None)
    if freq is not None:
        values["no_rope_freq"] = freq if isinstance(freq, int) else tuple(freq)
    if getattr(args, "recompute_modules", None) is not None:
        values["recompute_modules"] = tuple(args.recompute_modules)
    values.update(overrides)
    return TransformerConfig(**values)
