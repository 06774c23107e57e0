"""``--loader core``: the original's ``--ckpt-format torch`` checkpoints (ours or the original's).

Reads one pipeline stage at a time: its tensor-parallel shard files are merged by the
parameters' split tags, and its layers are sent with global numbers. Transformer Engine names
(fused ``layer_norm_weight``) are read as local-spec names.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import torch
from gpt_ckpt.legacy_reader import (
    LegacyCheckpointError,
    ShardKey,
    iteration_dir,
    list_shards,
    read_checkpoint_file,
    read_tracker,
)
from gpt_models.hf_mapping import EMBEDDINGS, FINAL_NORM, OUTPUT_LAYER, layer_part
from gpt_models.model_rules import TransformerConfigError
from gpt_models.original_args import transformer_config_from_original_args
from gpt_models.original_names import EXTRA_STATE_SUFFIX, to_local_names
from gpt_models.tp_shards import REPLICATED, merge

from .errors import ArgsError
from .layout import (
    check_tensor_parallel,
    expert_index,
    layer_index,
    split_pattern,
    splits_by_pattern,
    with_expert_index,
)
from .parts import ModelMetadata, Part

NAME = "core"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """The core loader needs no flags of its own (the checkpoint's args describe the model)."""


def _shards(
    load_dir: Path, expert_parallel: bool = False
) -> tuple[int | None, dict[ShardKey, Path]]:
    if not load_dir.is_dir():
        raise ArgsError(f"--load-dir {load_dir} does not exist")
    try:
        iteration, release = read_tracker(load_dir)
        folder = iteration_dir(load_dir, iteration, release)
        shards = list_shards(folder, expert_parallel=expert_parallel)
    except LegacyCheckpointError as err:
        raise ArgsError(f"--load-dir {load_dir}: {err}") from None
    return (None if release else iteration), shards


def _read(path: Path):
    try:
        return read_checkpoint_file(path)
    except LegacyCheckpointError as err:
        raise ArgsError(str(err)) from None


def load(args: argparse.Namespace) -> tuple[ModelMetadata, Iterator[Part]]:
    """The checkpoint's metadata (from its pickled args) and a generator of its parts."""
    load_dir = Path(args.load_dir)
    iteration, shards = _shards(load_dir)
    first = _read(shards[min(shards, key=lambda k: (k.tp, k.pp, k.ep))])
    if first.args is None:
        raise ArgsError(f"{first.path} holds no 'args': the model cannot be described")
    if len(first.models) != 1:
        raise ArgsError(f"{first.path}: virtual-pipeline checkpoints are not supported yet")
    if (getattr(first.args, "expert_model_parallel_size", 1) or 1) > 1:
        # mp_rank_TT_EEE (PP = 1) cannot be told from mp_rank_TT_PPP by its name
        iteration, shards = _shards(load_dir, expert_parallel=True)
    tp = 1 + max(key.tp for key in shards)
    pp = 1 + max(key.pp for key in shards)
    ep = 1 + max(key.ep for key in shards)
    missing = [
        (t, p, e)
        for t in range(tp)
        for p in range(pp)
        for e in range(ep)
        if ShardKey(t, p, e) not in shards
    ]
    if missing:
        raise ArgsError(f"--load-dir {load_dir}: shard files missing for (tp, pp, ep) {missing}")
    try:
        config = transformer_config_from_original_args(first.args, perform_initialization=False)
    except (TransformerConfigError, TypeError, ValueError) as err:
        raise ArgsError(f"{first.path}: its args describe no model we build ({err})") from None
    word = to_local_names(first.model).get("embedding.word_embeddings.weight")
    dtype = word.dtype if isinstance(word, torch.Tensor) else torch.float32
    metadata = ModelMetadata(
        config=config,
        true_vocab_size=args.true_vocab_size,
        make_vocab_size_divisible_by=args.make_vocab_size_divisible_by
        or getattr(first.args, "make_vocab_size_divisible_by", None)
        or 128,
        iteration=iteration,
        source=f"core {load_dir}",
        checkpoint_args=first.args,
        previous_tensor_parallel_size=tp,
        previous_pipeline_parallel_size=pp,
        previous_expert_parallel_size=ep,
        dtype=dtype,
    )
    check_tensor_parallel(config, tp, f"--load-dir {load_dir}: tensor-parallel size")
    if config.num_experts and config.num_experts % ep:
        raise ArgsError(
            f"--load-dir {load_dir}: {ep} expert ranks for {config.num_experts} experts"
        )
    return metadata, _parts(metadata, shards, tp, pp)


def _merged_stage(
    metadata: ModelMetadata, shards: dict[ShardKey, Path], tp: int, stage: int
) -> dict[str, torch.Tensor]:
    """Stage ``stage``'s full tensors (local layer numbers), its TP shards merged."""
    splits = splits_by_pattern(metadata.config)
    ep = metadata.previous_expert_parallel_size
    models = []
    for rank in range(tp):
        model: dict[str, torch.Tensor] = {}
        for expert_rank in range(ep):
            ckpt = _read(shards[ShardKey(rank, stage, expert_rank)])
            for key, value in to_local_names(ckpt.model).items():
                if key.endswith(EXTRA_STATE_SUFFIX):
                    continue
                local = expert_index(key)
                if local is not None:
                    per_rank = metadata.config.num_experts // ep
                    model[with_expert_index(key, expert_rank * per_rank + local)] = value
                elif expert_rank == 0:  # the non-expert weights are the same on every expert rank
                    model[key] = value
        models.append(model)
    keys = list(models[0])
    for rank, other in enumerate(models[1:], start=1):
        if set(other) != set(keys):
            raise ArgsError(f"--load-dir: tensor-parallel shard {rank} of stage {stage} differs")
    merged = {}
    for key in keys:
        pattern = split_pattern(key)
        if pattern not in splits:
            raise ArgsError(f"--load-dir: stage {stage} holds {key}, which the model has not")
        merged[key] = merge([m[key] for m in models], splits.get(pattern, REPLICATED))
    return merged


def _parts(
    metadata: ModelMetadata, shards: dict[ShardKey, Path], tp: int, pp: int
) -> Iterator[Part]:
    config = metadata.config
    offset = 0
    for stage in range(pp):
        tensors = _merged_stage(metadata, shards, tp, stage)
        if stage == 0:
            yield Part(EMBEDDINGS, {k: v for k, v in tensors.items() if k.startswith("embedding.")})
        layers = sorted({i for k in tensors if (i := layer_index(k)) is not None})
        if layers != list(range(len(layers))):
            raise ArgsError(f"--load-dir: stage {stage} holds layers {layers}")
        for local in layers:
            prefix = f"decoder.layers.{local}."
            yield Part(
                layer_part(offset + local),
                {
                    f"decoder.layers.{offset + local}.{k[len(prefix) :]}": v
                    for k, v in tensors.items()
                    if k.startswith(prefix)
                },
            )
        offset += len(layers)
        if stage == pp - 1:
            yield Part(
                FINAL_NORM,
                {k: v for k, v in tensors.items() if k.startswith("decoder.final_layernorm.")},
            )
            if config.untie_embeddings_and_output_weights:
                yield Part(OUTPUT_LAYER, {"output_layer.weight": tensors["output_layer.weight"]})
        del tensors
    if offset != config.num_layers:
        raise ArgsError(
            f"--load-dir: the stages hold {offset} layers, the args say --num-layers "
            f"{config.num_layers}"
        )
