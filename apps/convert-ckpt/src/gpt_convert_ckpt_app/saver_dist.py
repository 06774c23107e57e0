"""``--saver torch_dist`` / ``torch_dcp`` / ``zarr``: the sharded formats (§4.4), through
gpt-ckpt's global-tensor writer.

Every tensor is written whole under its global key, so the checkpoint loads into any
layout; ``--target-tensor-parallel-size`` only sets the vocabulary padding and the recorded
sizes. The writer takes the whole model at once, so this saver holds the model (once) before
writing.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import torch
from gpt_ckpt.global_tensors import save_global_tensors
from gpt_ckpt.legacy_reader import iteration_dir
from gpt_ckpt.legacy_writer import CHECKPOINT_VERSION, write_tracker
from gpt_ckpt.sharded import ShardedCheckpointError

from . import saver_core
from .checkpoint_args import checkpoint_args
from .errors import ArgsError
from .layout import stage_layout
from .parts import ModelMetadata, Part
from .vocab import resize_rows, target_rows

NAME = "dist"
add_arguments = saver_core.add_arguments
check = saver_core.check


def save(
    args: argparse.Namespace, metadata: ModelMetadata, parts: Iterable[Part], out: Path
) -> None:
    """Collect every part, check it against the model, write the folder and the tracker."""
    tp, pp, ep = saver_core.sizes(args, metadata)
    rows = target_rows(
        metadata.config.padded_vocab_size,
        metadata.true_vocab_size,
        metadata.make_vocab_size_divisible_by,
        tp,
    )
    config = metadata.config.replace(padded_vocab_size=rows)
    tensors: dict[str, torch.Tensor] = {}
    for part in parts:
        tensors.update(part.tensors)
    for key in ("embedding.word_embeddings.weight", "output_layer.weight"):
        if key in tensors:
            tensors[key] = resize_rows(tensors[key], rows).clone()
    layout = stage_layout(config, 0, config.num_layers, first=True, last=True)
    for key, shape in layout.shapes.items():
        if key not in tensors:
            raise ArgsError(f"{metadata.source}: the loader sent no {key}")
        if tuple(tensors[key].shape) != shape:
            raise ArgsError(
                f"{metadata.source}: {key} has shape {tuple(tensors[key].shape)}, the model "
                f"needs {shape}"
            )
    saved_args = checkpoint_args(
        metadata,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        expert_parallel=ep,
        padded_vocab_size=rows,
        tokenizer_model=args.tokenizer_model,
        transformer_impl="local",
    )
    saved_args.ckpt_format = args.saver
    iteration = metadata.iteration
    common = {
        "args": saved_args,
        "checkpoint_version": CHECKPOINT_VERSION,
        "iteration": iteration or 0,
        "num_floating_point_operations_so_far": 0,
    }
    folder = iteration_dir(out, iteration or 0, iteration is None)
    try:
        save_global_tensors(folder, args.saver, {k: tensors[k] for k in layout.shapes}, common)
    except ShardedCheckpointError as err:
        raise ArgsError(f"--save-dir: {err}") from None
    write_tracker(out, "release" if iteration is None else iteration)  # type: ignore[arg-type]
