"""``--saver core``: the original's ``--ckpt-format torch`` layout at the target TP/PP sizes.

Split as the original's saver splits: each parameter by its tensor-parallel tag (QKV by whole
query groups, swiglu ``linear_fc1`` as ``[gate_r; up_r]`` per rank, the vocabulary by rows),
layers over pipeline stages in equal runs with local numbers, experts over expert-parallel
ranks in equal runs with local numbers (``mp_rank_TT[_PPP]_EEE``), the (padded) embedding on the
first stage and, for tied embeddings with PP > 1, its copy as ``output_layer.weight`` on the
last. One stage is held at a time; its shard files are written one tensor-parallel rank at a
time. A release checkpoint (from HF) is written as ``release``; one from a core checkpoint keeps
its iteration.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import torch
from gpt_ckpt.legacy_reader import CHECKPOINT_FILENAME, iteration_dir, shard_dirname
from gpt_ckpt.legacy_writer import CHECKPOINT_VERSION, write_shard, write_tracker
from gpt_models.hf_mapping import EMBEDDINGS, OUTPUT_LAYER
from gpt_models.original_names import to_te_names
from gpt_models.tp_shards import REPLICATED, shard

from .checkpoint_args import checkpoint_args
from .errors import ArgsError
from .layout import (
    StageLayout,
    check_tensor_parallel,
    expert_index,
    layer_index,
    stage_layout,
    with_expert_index,
)
from .parts import ModelMetadata, Part
from .vocab import resize_rows, target_rows

NAME = "core"
_VOCAB_KEYS = ("embedding.word_embeddings.weight", "output_layer.weight")


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--target-tensor-parallel-size",
        type=int,
        help="Target tensor model parallel size, defaults to the tensor parallel size of the "
        "input checkpoint (1 for HF) if provided by the loader, otherwise to 1",
    )
    group.add_argument(
        "--target-pipeline-parallel-size",
        type=int,
        help="Target pipeline model parallel size, defaults to the pipeline parallel size of "
        "the input checkpoint (1 for HF) if provided by the loader, otherwise to 1",
    )
    group.add_argument(
        "--target-expert-parallel-size",
        type=int,
        help="Target expert model parallel size, defaults to the expert parallel size of the "
        "input checkpoint (1 for HF); experts are split over the ranks in equal runs",
    )
    group.add_argument(
        "--saver-transformer-impl",
        choices=("local", "transformer_engine"),
        default="local",
        help="Parameter names to write: the local spec's (input_layernorm.*) or Transformer "
        "Engine's (linear_qkv.layer_norm_*); both load in pretrain",
    )


def sizes(args: argparse.Namespace, metadata: ModelMetadata) -> tuple[int, int, int]:
    """The target (TP, PP, EP), checked against the model before anything is written."""
    tp = args.target_tensor_parallel_size or metadata.previous_tensor_parallel_size
    pp = args.target_pipeline_parallel_size or metadata.previous_pipeline_parallel_size
    ep = args.target_expert_parallel_size or metadata.previous_expert_parallel_size
    c = metadata.config
    for flag, value in (
        ("--target-tensor-parallel-size", tp),
        ("--target-pipeline-parallel-size", pp),
        ("--target-expert-parallel-size", ep),
    ):
        if value < 1:
            raise ArgsError(f"{flag} {value} must be at least 1")
    if ep != 1 and not c.num_experts:
        raise ArgsError(f"--target-expert-parallel-size {ep}: the model has no experts")
    if c.num_experts and c.num_experts % ep:
        raise ArgsError(
            f"--target-expert-parallel-size {ep} does not divide --num-experts {c.num_experts}"
        )
    checks = (
        ("--num-layers", c.num_layers, pp, "--target-pipeline-parallel-size"),
        ("--num-attention-heads", c.num_attention_heads, tp, "--target-tensor-parallel-size"),
        ("query groups", c.num_groups, tp, "--target-tensor-parallel-size"),
        ("--ffn-hidden-size", c.ffn_hidden_size, tp, "--target-tensor-parallel-size"),
    )
    for what, total, size, flag in checks:
        if total % size:
            raise ArgsError(f"{flag} {size} does not divide {what} {total}")
    check_tensor_parallel(c, tp, "--target-tensor-parallel-size")
    return tp, pp, ep


def check(args: argparse.Namespace, metadata: ModelMetadata) -> None:
    """Fail on sizes that do not fit before the conversion starts."""
    tp, _, _ = sizes(args, metadata)
    target_rows(
        metadata.config.padded_vocab_size,
        metadata.true_vocab_size,
        metadata.make_vocab_size_divisible_by,
        tp,
    )


class _StageWriter:
    """Collects the full tensors of one stage and writes its shards when it is complete."""

    def __init__(self, args: argparse.Namespace, metadata: ModelMetadata, out: Path) -> None:
        self.tp, self.pp, self.ep = sizes(args, metadata)
        self.rows = target_rows(
            metadata.config.padded_vocab_size,
            metadata.true_vocab_size,
            metadata.make_vocab_size_divisible_by,
            self.tp,
        )
        self.config = metadata.config.replace(padded_vocab_size=self.rows)
        self.metadata = metadata
        self.out = out
        self.te_names = args.saver_transformer_impl == "transformer_engine"
        self.tokenizer_model = args.tokenizer_model
        self.per_stage = self.config.num_layers // self.pp
        self.buffer: dict[str, torch.Tensor] = {}
        self.word: torch.Tensor | None = None
        self.stage = 0

    def _layout(self, stage: int) -> StageLayout:
        return stage_layout(
            self.config,
            stage * self.per_stage,
            self.per_stage,
            first=stage == 0,
            last=stage == self.pp - 1,
        )

    def add(self, part: Part) -> None:
        tensors = dict(part.tensors)
        for key in _VOCAB_KEYS:
            if key in tensors:
                tensors[key] = resize_rows(tensors[key], self.rows)
        if part.name == EMBEDDINGS and self.config.share_embeddings_and_output_weights:
            self.word = tensors["embedding.word_embeddings.weight"]
        if part.name == OUTPUT_LAYER and not self.config.untie_embeddings_and_output_weights:
            raise ArgsError("the loader sent an output layer for a model with tied embeddings")
        self.buffer.update(tensors)
        layers = [i for k in tensors if (i := layer_index(k)) is not None]
        if layers and max(layers) == (self.stage + 1) * self.per_stage - 1:
            if self.stage < self.pp - 1:
                self.flush()

    def flush(self) -> None:
        """Write the shards of the current stage and move on to the next."""
        layout = self._layout(self.stage)
        last = self.stage == self.pp - 1
        if last and self.word is not None and self.pp > 1:
            self.buffer.setdefault("output_layer.weight", self.word)
        full: dict[str, torch.Tensor] = {}
        for key, shape in layout.shapes.items():
            name = layout.global_key(key)
            if name not in self.buffer:
                raise ArgsError(f"{self.metadata.source}: the loader sent no {name}")
            value = self.buffer[name]
            if tuple(value.shape) != shape:
                raise ArgsError(
                    f"{self.metadata.source}: {name} has shape {tuple(value.shape)}, the model "
                    f"needs {shape}"
                )
            full[key] = value
        args = checkpoint_args(
            self.metadata,
            tensor_parallel=self.tp,
            pipeline_parallel=self.pp,
            expert_parallel=self.ep,
            padded_vocab_size=self.rows,
            tokenizer_model=self.tokenizer_model,
            transformer_impl="transformer_engine" if self.te_names else "local",
        )
        for expert_rank in range(self.ep):
            mine = self._expert_rank_keys(list(full) + list(layout.extra_state), expert_rank)
            for rank in range(self.tp):
                model: dict[str, torch.Tensor | None] = {
                    local: None
                    if key in layout.extra_state
                    else shard(full[key], layout.splits.get(key, REPLICATED), self.tp, rank).clone()
                    for key, local in mine.items()
                }
                if self.te_names:
                    model = to_te_names(model)
                content = {
                    "args": args,
                    "checkpoint_version": CHECKPOINT_VERSION,
                    "iteration": self.metadata.iteration or 0,
                    "model": model,
                    "num_floating_point_operations_so_far": 0,
                }
                write_shard(self._path(rank, expert_rank), content)
                del model, content
        self.buffer = {}
        self.stage += 1

    def _expert_rank_keys(self, keys: list[str], expert_rank: int) -> dict[str, str]:
        """Stage key -> its name in expert rank ``expert_rank``'s file: every non-expert key,
        and this rank's run of experts renumbered from 0 (the original's local experts)."""
        per_rank = (self.config.num_experts or 0) // self.ep
        out = {}
        for key in keys:
            index = expert_index(key)
            if index is None:
                out[key] = key
            elif index // per_rank == expert_rank:
                out[key] = with_expert_index(key, index - expert_rank * per_rank)
        return out

    def _path(self, rank: int, expert_rank: int) -> Path:
        release = self.metadata.iteration is None
        folder = iteration_dir(self.out, self.metadata.iteration or 0, release)
        name = shard_dirname(
            rank, self.stage if self.pp > 1 else None, expert_rank if self.ep > 1 else None
        )
        return folder / name / CHECKPOINT_FILENAME


def save(
    args: argparse.Namespace, metadata: ModelMetadata, parts: Iterable[Part], out: Path
) -> None:
    """Write every part to ``out`` (the staging folder), then the tracker file."""
    writer = _StageWriter(args, metadata, out)
    for part in parts:
        writer.add(part)
    writer.flush()
    if writer.stage != writer.pp:
        raise ArgsError(f"{metadata.source}: the loader stopped after stage {writer.stage}")
    iteration = metadata.iteration
    write_tracker(out, "release" if iteration is None else iteration)  # type: ignore[arg-type]
