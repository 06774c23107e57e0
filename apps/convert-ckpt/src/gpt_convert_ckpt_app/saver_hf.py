"""``--saver hf``: an HF transformers directory (config.json, safetensors, index when sharded).

Parts are converted as they arrive and written in safetensors files of at most
``--max-shard-size`` bytes, named as ``save_pretrained`` names them; a tied model gets no
``lm_head.weight`` (transformers ties it on load). The vocabulary is ``--true-vocab-size`` (or
the loader's) rows: the padding rows are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from gpt_models.hf_mapping import (
    SUPPORTED_MODEL_TYPES,
    HFMappingError,
    gpt_part_to_hf,
    hf_config_dict,
    hf_config_from_dict,
)
from safetensors.torch import save_file

from .errors import ArgsError
from .parts import ModelMetadata, Part

NAME = "hf"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--hf-model-type",
        choices=SUPPORTED_MODEL_TYPES,
        help="The HF family to write (default: the loader's HF config, or the family the "
        "model's architecture matches: gpt2, llama or qwen2)",
    )
    group.add_argument(
        "--max-shard-size",
        type=int,
        default=5 * 1024**3,
        help="Largest safetensors file in bytes (default 5 GiB); more make an index file",
    )


def _vocab_size(metadata: ModelMetadata) -> int:
    return metadata.true_vocab_size or metadata.config.padded_vocab_size


def hf_config_for(args: argparse.Namespace, metadata: ModelMetadata) -> dict:
    """The config.json to write (the loader's, when it read one and no family is forced)."""
    vocab = _vocab_size(metadata)
    if vocab > metadata.config.padded_vocab_size:
        raise ArgsError(
            f"--true-vocab-size {vocab} exceeds the {metadata.config.padded_vocab_size} "
            "embedding rows"
        )
    try:
        if metadata.hf_config is not None and args.hf_model_type in (
            None,
            metadata.hf_config.get("model_type"),
        ):
            return dict(metadata.hf_config) | {"vocab_size": vocab}
        return hf_config_dict(
            metadata.config, vocab, model_type=args.hf_model_type, dtype=metadata.dtype
        )
    except HFMappingError as err:
        raise ArgsError(f"--saver hf: {metadata.source}: {err}") from None


def check(args: argparse.Namespace, metadata: ModelMetadata) -> None:
    if args.max_shard_size < 1:
        raise ArgsError(f"--max-shard-size {args.max_shard_size} must be positive")
    hf_config_for(args, metadata)


class _ShardedWriter:
    """Safetensors files of at most ``limit`` bytes, renamed and indexed when all are written."""

    def __init__(self, out: Path, limit: int) -> None:
        self.out, self.limit = out, limit
        self.pending: dict[str, torch.Tensor] = {}
        self.size = 0
        self.files: list[tuple[Path, list[str]]] = []
        self.total = 0

    def add(self, tensors: dict[str, torch.Tensor]) -> None:
        for key, value in tensors.items():
            nbytes = value.numel() * value.element_size()
            if self.pending and self.size + nbytes > self.limit:
                self.flush()
            # A copy of its own: views of one tensor (q/k/v, gate/up) must not share memory.
            self.pending[key] = value.detach().to("cpu").clone().contiguous()
            self.size += nbytes
            self.total += nbytes

    def flush(self) -> None:
        if not self.pending:
            return
        path = self.out / f".shard-{len(self.files):05d}.safetensors"
        save_file(self.pending, str(path), metadata={"format": "pt"})
        os.chmod(path, 0o666 & ~_umask())  # safetensors creates the file private (0600)
        self.files.append((path, list(self.pending)))
        self.pending, self.size = {}, 0

    def finish(self) -> None:
        self.flush()
        if len(self.files) == 1:
            os.replace(self.files[0][0], self.out / "model.safetensors")
            return
        count = len(self.files)
        weight_map = {}
        for number, (path, keys) in enumerate(self.files, start=1):
            name = f"model-{number:05d}-of-{count:05d}.safetensors"
            os.replace(path, self.out / name)
            weight_map |= {key: name for key in keys}
        index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
        (self.out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy_tokenizer(source: str, out: Path) -> None:
    path = Path(source)
    if path.is_file():
        shutil.copy2(path, out / path.name)
        return
    if not path.is_dir():
        raise ArgsError(f"--tokenizer-model {source} does not exist")
    for name in TOKENIZER_FILES:
        if (path / name).is_file():
            shutil.copy2(path / name, out / name)


def save(
    args: argparse.Namespace, metadata: ModelMetadata, parts: Iterable[Part], out: Path
) -> None:
    """Convert and write every part, then config.json (and the tokenizer files, if given)."""
    values = hf_config_for(args, metadata)
    view = hf_config_from_dict(values)
    config = metadata.config
    writer = _ShardedWriter(out, args.max_shard_size)
    for part in parts:
        try:
            writer.add(gpt_part_to_hf(part.name, part.tensors, view, config))
        except (KeyError, HFMappingError) as err:
            raise ArgsError(f"{metadata.source}: {part.name}: {err}") from None
    writer.finish()
    (out / "config.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    if args.tokenizer_model:
        _copy_tokenizer(args.tokenizer_model, out)
