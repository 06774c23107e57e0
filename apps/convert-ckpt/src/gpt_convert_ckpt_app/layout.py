"""Which keys a model (or one pipeline stage of it) has, their full shapes and their splits.

Read from our GPTModel built on the meta device (no memory): the parameters carry their
tensor-parallel split tags (gpt_models.tp_shards), so splitting and merging follow the model,
never a table of names kept here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from gpt_models.model import GPTModel
from gpt_models.original_names import EXTRA_STATE_SUFFIX
from gpt_models.tp_shards import TensorSplit, split_of
from gpt_models.transformer_config import TransformerConfig

from .errors import ArgsError

_LAYER_KEY = re.compile(r"^decoder\.layers\.(\d+)\.(.+)$")
_EXPERT_KEY = re.compile(r"^(.*\.mlp\.experts\.local_experts\.)(\d+)(\..+)$")


def expert_index(key: str) -> int | None:
    """The expert number in ``...mlp.experts.local_experts.E...``, None for other keys."""
    match = _EXPERT_KEY.match(key)
    return int(match[2]) if match else None


def with_expert_index(key: str, index: int) -> str:
    """``key`` with its expert number replaced by ``index``."""
    match = _EXPERT_KEY.match(key)
    return f"{match[1]}{index}{match[3]}" if match else key


@dataclass(frozen=True)
class StageLayout:
    """One pipeline stage: its global layers, and its keys (local layer numbers) with shapes
    and splits; ``extra_state`` keys are saved as None, as the original's files hold them."""

    first_layer: int
    num_layers: int
    shapes: dict[str, tuple[int, ...]]
    splits: dict[str, TensorSplit]
    extra_state: tuple[str, ...]

    def global_key(self, local_key: str) -> str:
        """``decoder.layers.j.x`` of this stage -> ``decoder.layers.{first + j}.x``."""
        match = _LAYER_KEY.match(local_key)
        if not match:
            return local_key
        return f"decoder.layers.{self.first_layer + int(match[1])}.{match[2]}"


def stage_layout(
    config: TransformerConfig, first_layer: int, num_layers: int, *, first: bool, last: bool
) -> StageLayout:
    """The layout of the stage holding layers ``first_layer .. first_layer + num_layers - 1``."""
    model = GPTModel(
        config,
        device="meta",
        pre_process=first,
        post_process=last,
        layer_numbers=range(first_layer + 1, first_layer + num_layers + 1),
    )
    state = model.state_dict(keep_vars=True)
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    extra = tuple(k for k in state if k.endswith(EXTRA_STATE_SUFFIX))
    return StageLayout(first_layer, num_layers, shapes, _splits(model), extra)


def _splits(model: GPTModel) -> dict[str, TensorSplit]:
    """``tensor_parallel_layout``; a parameter without split tags (gpt-moe's router and
    experts carry none yet) is listed as ``UNTAGGED``: it converts at tensor-parallel size 1
    only, where no split is needed."""
    out = {}
    for key, value in model.state_dict(keep_vars=True).items():
        if isinstance(value, torch.nn.Parameter):
            out[key] = split_of(value) if hasattr(value, "tensor_model_parallel") else UNTAGGED
    return out


UNTAGGED = TensorSplit(dim=-2)
"""The split of a parameter whose model did not tag it (treated as whole at TP 1)."""


def check_tensor_parallel(config: TransformerConfig, size: int, flag: str) -> None:
    """Refuse TP > 1 for a model with parameters of unknown split (one line)."""
    if size == 1:
        return
    layout = stage_layout(config, 0, config.num_layers, first=True, last=True)
    untagged = [key for key, split in layout.splits.items() if split == UNTAGGED]
    if untagged:
        raise ArgsError(
            f"{flag} {size}: the model's {split_pattern(untagged[0])} (and "
            f"{len(untagged) - 1} more) has no tensor-parallel split yet; use 1"
        )


def split_pattern(key: str) -> str:
    """A key with its layer number replaced by ``*`` (every layer splits alike)."""
    match = _LAYER_KEY.match(key)
    return f"decoder.layers.*.{match[2]}" if match else key


def layer_index(key: str) -> int | None:
    """The layer number in ``decoder.layers.N...``, None for other keys."""
    match = _LAYER_KEY.match(key)
    return int(match[1]) if match else None


def splits_by_pattern(config: TransformerConfig) -> dict[str, TensorSplit]:
    """Each parameter's split, keyed by ``split_pattern`` (for merging any stage's shards).

    A last stage without the first (PP > 1) adds the tied embedding's copy,
    ``output_layer.weight``, which the one-stage model does not have."""
    whole = stage_layout(config, 0, config.num_layers, first=True, last=True)
    last = stage_layout(config, config.num_layers - 1, 1, first=False, last=True)
    return {split_pattern(key): split for key, split in (last.splits | whole.splits).items()}
