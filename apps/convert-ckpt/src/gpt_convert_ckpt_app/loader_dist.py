"""``--loader torch_dist`` / ``torch_dcp`` / ``zarr``: the sharded formats (§4.4), through
gpt-ckpt's global-tensor reader.

Such a checkpoint holds every tensor under its global key (our names, global layer numbers)
whatever layout saved it, and ``args`` in its common state; each part's tensors are read
whole, one part at a time.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from gpt_ckpt.dist_dir import detect_format, read_common
from gpt_ckpt.global_tensors import global_tensor_shapes, read_global_tensor
from gpt_ckpt.legacy_reader import LegacyCheckpointError, iteration_dir, read_tracker
from gpt_ckpt.sharded import ShardedCheckpointError
from gpt_models.hf_mapping import EMBEDDINGS, FINAL_NORM, OUTPUT_LAYER, layer_of_part, part_names
from gpt_models.model_rules import TransformerConfigError
from gpt_models.original_args import transformer_config_from_original_args

from .errors import ArgsError
from .parts import ModelMetadata, Part

NAME = "dist"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """The sharded loaders need no flags of their own (the common state's args describe the
    model)."""


def _prefixes(name: str) -> tuple[str, ...]:
    if name == EMBEDDINGS:
        return ("embedding.",)
    if name == FINAL_NORM:
        return ("decoder.final_layernorm.",)
    if name == OUTPUT_LAYER:
        return ("output_layer.",)
    return (f"decoder.layers.{layer_of_part(name)}.",)


def load(args: argparse.Namespace) -> tuple[ModelMetadata, Iterator[Part]]:
    load_dir = Path(args.load_dir)
    if not load_dir.is_dir():
        raise ArgsError(f"--load-dir {load_dir} does not exist")
    try:
        iteration, release = read_tracker(load_dir)
        folder = iteration_dir(load_dir, iteration, release)
        fmt = detect_format(folder)
        if fmt == "torch":
            raise ArgsError(f"--load-dir {load_dir} holds a torch checkpoint: use --loader core")
        if fmt != args.loader:
            raise ArgsError(f"--load-dir {load_dir} holds a {fmt} checkpoint, not {args.loader}")
        common = read_common(folder)
        shapes = global_tensor_shapes(folder)
    except (LegacyCheckpointError, ShardedCheckpointError) as err:
        raise ArgsError(f"--load-dir {load_dir}: {err}") from None
    saved = common.get("args")
    if saved is None:
        raise ArgsError(f"{folder}: the common state holds no 'args'")
    try:
        config = transformer_config_from_original_args(saved, perform_initialization=False)
    except (TransformerConfigError, TypeError, ValueError) as err:
        raise ArgsError(f"{folder}: its args describe no model we build ({err})") from None
    word = shapes.get("embedding.word_embeddings.weight")
    if word is None:
        raise ArgsError(f"{folder} holds no embedding.word_embeddings.weight")
    config = config.replace(padded_vocab_size=word[0])
    metadata = ModelMetadata(
        config=config,
        true_vocab_size=args.true_vocab_size,
        make_vocab_size_divisible_by=args.make_vocab_size_divisible_by
        or getattr(saved, "make_vocab_size_divisible_by", None)
        or 128,
        iteration=None if release else iteration,
        source=f"{fmt} {load_dir}",
        checkpoint_args=saved,
        previous_tensor_parallel_size=getattr(saved, "tensor_model_parallel_size", 1) or 1,
        previous_pipeline_parallel_size=getattr(saved, "pipeline_model_parallel_size", 1) or 1,
        previous_expert_parallel_size=getattr(saved, "expert_model_parallel_size", 1) or 1,
    )
    model_keys = [k for k in shapes if not k.startswith("optimizer.")]

    def parts() -> Iterator[Part]:
        for name in part_names(config):
            prefixes = _prefixes(name)
            keys = [k for k in model_keys if k.startswith(prefixes)]
            if not keys:
                raise ArgsError(f"{folder} holds no tensors for {name}")
            try:
                yield Part(name, {key: read_global_tensor(folder, key) for key in keys})
            except ShardedCheckpointError as err:
                raise ArgsError(f"{folder}: {err}") from None

    return metadata, parts()
