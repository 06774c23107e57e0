"""``--loader hf``: an HF transformers directory (config.json and safetensors weights).

The weights are read lazily, tensor by tensor, from ``model.safetensors`` or the shards named
by ``model.safetensors.index.json``, so only the part being converted is in memory.
transformers itself is not needed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from gpt_models.hf_mapping import (
    HFMappingError,
    hf_config_from_dict,
    hf_part_to_gpt,
    part_names,
    transformer_config_from_hf,
)
from gpt_models.model_rules import TransformerConfigError
from safetensors import safe_open

from .errors import ArgsError
from .parts import ModelMetadata, Part

NAME = "hf"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """The hf loader reads everything from config.json."""


class LazySafetensors(Mapping[str, torch.Tensor]):
    """A state dict whose tensors are read from their safetensors file when looked up."""

    def __init__(self, files: dict[str, Path]) -> None:
        self._files = files
        self._handles: dict[Path, Any] = {}

    def __getitem__(self, key: str) -> torch.Tensor:
        path = self._files.get(key)
        if path is None:
            raise KeyError(key)
        if path not in self._handles:
            self._handles[path] = safe_open(str(path), framework="pt")
        return self._handles[path].get_tensor(key)

    def __iter__(self):
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def weight_files(load_dir: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file that holds it."""
    index = load_dir / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError, TypeError):
            raise ArgsError(f"{index} is not a safetensors index (no weight_map)") from None
        files = {key: load_dir / name for key, name in weight_map.items()}
        absent = sorted({str(p) for p in files.values() if not p.is_file()})
        if absent:
            raise ArgsError(f"{index} names missing files: {', '.join(absent)}")
        return files
    single = load_dir / SINGLE_FILE
    if single.is_file():
        with safe_open(str(single), framework="pt") as handle:
            return {key: single for key in handle.keys()}  # noqa: SIM118 - not a dict
    raise ArgsError(f"--load-dir {load_dir}: no {SINGLE_FILE} or {INDEX_FILE}")


def read_config(load_dir: Path) -> dict[str, Any]:
    if not load_dir.is_dir():
        raise ArgsError(f"--load-dir {load_dir} does not exist")
    path = load_dir / "config.json"
    if not path.is_file():
        raise ArgsError(f"--load-dir {load_dir}: no config.json (not an HF model directory)")
    try:
        values = json.loads(path.read_text())
    except ValueError as err:
        raise ArgsError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(values, dict):
        raise ArgsError(f"{path} does not hold a JSON object")
    return values


def _dtype(values: Mapping[str, Any]) -> torch.dtype:
    name = values.get("dtype") or values.get("torch_dtype") or "float32"
    dtype = getattr(torch, str(name), None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def load(args: argparse.Namespace) -> tuple[ModelMetadata, Iterator[Part]]:
    """config.json as our TransformerConfig, and a generator of the converted parts."""
    load_dir = Path(args.load_dir)
    values = read_config(load_dir)
    try:
        hf_config = hf_config_from_dict(values)
        config = transformer_config_from_hf(
            hf_config,
            padded_vocab_size=int(hf_config.vocab_size),
            params_dtype=_dtype(values),
            perform_initialization=False,
        )
    except (HFMappingError, TransformerConfigError, TypeError, ValueError, AttributeError) as err:
        raise ArgsError(f"{load_dir / 'config.json'}: {err}") from None
    state = LazySafetensors(weight_files(load_dir))
    metadata = ModelMetadata(
        config=config,
        true_vocab_size=args.true_vocab_size or int(hf_config.vocab_size),
        make_vocab_size_divisible_by=args.make_vocab_size_divisible_by or 128,
        iteration=None,
        source=f"hf {load_dir}",
        hf_config=values,
        dtype=_dtype(values),
    )

    def parts() -> Iterator[Part]:
        for name in part_names(config):
            try:
                yield Part(name, hf_part_to_gpt(name, state, hf_config, config))
            except KeyError as err:
                raise ArgsError(f"--load-dir {load_dir}: no tensor {err} in the weights") from None
            except HFMappingError as err:
                raise ArgsError(f"--load-dir {load_dir}: {err}") from None

    return metadata, parts()
