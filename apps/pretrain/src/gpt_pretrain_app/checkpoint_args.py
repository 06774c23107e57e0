"""`--use-checkpoint-args`: take the model's architecture flags from the checkpoint's saved `args`,
as the original's `load_args_from_checkpoint` does, before the flags are validated.

The rules are the original's: a *forced* setting always takes the checkpoint's value; the others
only fill a flag the command line left at None. `--use-mp-args-from-checkpoint-args` also takes
the parallel layout, and the tokenizer's type and model come from the checkpoint unless
`--no-use-tokenizer-model-from-checkpoint-args`. The source is `--pretrained-checkpoint`, then
`--load` (the later one wins, as in the original).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt_ckpt.dist_dir import detect_format, read_common
from gpt_ckpt.legacy_reader import (
    TRACKER_FILENAME,
    LegacyCheckpointError,
    iteration_dir,
    list_shards,
    load_file,
    read_tracker,
)
from gpt_ckpt.sharded import ShardedCheckpointError

from .errors import ArgsError

Log = Callable[[str], None]

# (dest, forced): the original's order and forcing.
MODEL_SETTINGS: tuple[tuple[str, bool], ...] = (
    ("num_layers", False),
    ("hidden_size", False),
    ("ffn_hidden_size", False),
    ("seq_length", False),
    ("num_attention_heads", False),
    ("num_query_groups", True),
    ("group_query_attention", True),
    ("kv_channels", False),
    ("max_position_embeddings", False),
    ("position_embedding_type", True),
    ("add_position_embedding", True),
    ("use_rotary_position_embeddings", True),
    ("rotary_base", True),
    ("rotary_percent", True),
    ("rotary_interleaved", True),
    ("add_bias_linear", True),
    ("add_qkv_bias", True),
    ("squared_relu", True),
    ("swiglu", True),
    ("untie_embeddings_and_output_weights", True),
    ("apply_layernorm_1p", True),
    ("normalization", True),
    ("apply_query_key_layer_scaling", True),
    ("attention_dropout", True),
    ("hidden_dropout", True),
    ("mtp_num_layers", True),
    ("spec", True),
    ("num_experts", True),
    ("moe_layer_freq", True),
    ("moe_router_topk", True),
    ("moe_token_dispatcher_type", False),
    ("moe_router_pre_softmax", True),
    ("moe_grouped_gemm", True),
    ("moe_shared_expert_intermediate_size", True),
    ("moe_router_score_function", True),
    ("moe_router_enable_expert_bias", True),
    ("moe_router_topk_scaling_factor", True),
    ("mamba_state_dim", True),
    ("mamba_head_dim", True),
    ("mamba_num_groups", True),
    ("mamba_num_heads", True),
    ("hybrid_override_pattern", False),
    ("heterogeneous_layers_config_path", True),
    ("heterogeneous_layers_config_encoded_json", True),
)
TOKENIZER_SETTINGS: tuple[tuple[str, bool], ...] = (
    ("tokenizer_model", True),
    ("tokenizer_type", True),
)
AFTER_TOKENIZER_SETTINGS: tuple[tuple[str, bool], ...] = (
    ("tiktoken_pattern", True),
    ("ckpt_format", False),
)
PARALLEL_SETTINGS: tuple[tuple[str, bool], ...] = (
    ("tensor_model_parallel_size", True),
    ("pipeline_model_parallel_size", True),
    ("virtual_pipeline_model_parallel_size", True),
    ("num_layers_per_virtual_pipeline_stage", False),
    ("expert_model_parallel_size", True),
)


def saved_args(load_dir: str, flag: str) -> tuple[Any, float] | None:
    """The `args` Namespace and checkpoint version of the checkpoint the tracker names, or None
    when the directory holds no checkpoint. A sharded checkpoint keeps them in its common state."""
    root = Path(load_dir)
    if not (root / TRACKER_FILENAME).is_file():
        return None
    try:
        iteration, release = read_tracker(root)
        folder = iteration_dir(root, iteration, release)
        if detect_format(folder) == "torch":
            state = load_file(next(iter(list_shards(folder).values())))
        else:
            state = read_common(folder)
    except (LegacyCheckpointError, ShardedCheckpointError) as err:
        raise ArgsError(f"{flag} {load_dir}: {err}") from None
    if not isinstance(state, dict) or state.get("args") is None:
        return None
    return state["args"], float(state.get("checkpoint_version", 0) or 0)


def apply_checkpoint_args(args: argparse.Namespace, log: Log) -> argparse.Namespace:
    """A copy of the parsed flags with the checkpoint's settings applied (the input unchanged)."""
    if not args.use_checkpoint_args:
        return args
    if args.load is None and args.pretrained_checkpoint is None:
        raise ArgsError("--use-checkpoint-args needs --load or --pretrained-checkpoint")
    if args.non_persistent_ckpt_type == "local":
        raise ArgsError(
            "--use-checkpoint-args does not work with --non-persistent-ckpt-type local: the "
            "local checkpoint manager needs every setting before it starts"
        )
    out = argparse.Namespace(**vars(args))
    for flag, source in (
        ("--pretrained-checkpoint", args.pretrained_checkpoint),
        ("--load", args.load),
    ):
        if source is None:
            continue
        found = saved_args(source, flag)
        if found is None:
            log(
                f"Checkpoint not found to provide arguments ({flag} {source}), using provided arguments."
            )
            continue
        _apply(out, *found, log)
    return out


def _apply(args: argparse.Namespace, saved: Any, version: float, log: Log) -> None:
    if hasattr(saved, "disable_bias_linear"):
        saved.add_bias_linear = not saved.disable_bias_linear
    settings = list(MODEL_SETTINGS)
    if args.use_tokenizer_model_from_checkpoint_args:
        settings += TOKENIZER_SETTINGS
    settings += AFTER_TOKENIZER_SETTINGS
    if args.use_mp_args_from_checkpoint_args:
        if version < 3.0:
            _set(args, saved, "tensor_model_parallel_size", False, log, "model_parallel_size")
        else:
            settings += PARALLEL_SETTINGS
    for dest, forced in settings:
        _set(args, saved, dest, forced, log)
    if getattr(saved, "num_experts", None) is not None:
        _set(args, saved, "moe_ffn_hidden_size", True, log)
    elif hasattr(args, "moe_ffn_hidden_size"):
        args.moe_ffn_hidden_size = None


def _set(
    args: argparse.Namespace,
    saved: Any,
    dest: str,
    forced: bool,
    log: Log,
    saved_name: str | None = None,
) -> None:
    """The original's `_set_arg`: flags this program does not have are left alone."""
    if not hasattr(args, dest):
        return
    if not forced and getattr(args, dest) is not None:
        return
    value = getattr(saved, saved_name or dest, None)
    if value is None:
        log(f"Checkpoint did not provide arguments {dest}")
        return
    log(f"Setting {dest} to {value} from checkpoint")
    setattr(args, dest, value)
