"""Merge the original's tensor-parallel state-dict shards into one full state dict, and back.

How the original splits each tensor over TP ranks (and so how its shards must be joined):
- column-parallel along dim 0: word embeddings and output layer (vocab-parallel),
  ``linear_qkv`` weight/bias (each rank holds ng/TP whole query groups, so the group-major
  layout survives concatenation) and ``linear_fc1`` weight/bias;
- row-parallel along dim 1: ``linear_proj`` and ``linear_fc2`` weights;
- replicated: norms, position embeddings, row-parallel biases, ``_extra_state``.
With swiglu, each rank reads its own fc1 shard as ``[gate_r; up_r]``; the full matrix is
``[gate_0; ...; gate_{T-1}; up_0; ...; up_{T-1}]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

_COLUMN_SUFFIXES = (
    "embedding.word_embeddings.weight",
    "output_layer.weight",
    "linear_qkv.weight",
    "linear_qkv.bias",
    "linear_fc1.weight",
    "linear_fc1.bias",
)
_ROW_SUFFIXES = ("linear_proj.weight", "linear_fc2.weight")
_GLU_SUFFIXES = ("linear_fc1.weight", "linear_fc1.bias")


def split_kind(key: str) -> str:
    """'column', 'row' or 'replicated' for a parameter name."""
    if key.endswith(_COLUMN_SUFFIXES):
        return "column"
    if key.endswith(_ROW_SUFFIXES):
        return "row"
    return "replicated"


def merge_tensor_parallel_shards(
    shards: Sequence[Mapping[str, Any]], *, gated_linear_unit: bool
) -> dict[str, Any]:
    """Join TP shards (rank order) into the single-device state dict the original computes."""
    if not shards:
        raise ValueError("no tensor-parallel shards to merge")
    keys = list(shards[0])
    for rank, shard in enumerate(shards[1:], start=1):
        if set(shard) != set(keys):
            raise ValueError(f"TP shard {rank} has different keys than shard 0")
    merged: dict[str, Any] = {}
    for key in keys:
        values = [shard[key] for shard in shards]
        kind = split_kind(key)
        if kind == "replicated" or not isinstance(values[0], torch.Tensor):
            merged[key] = values[0]
        elif kind == "row":
            merged[key] = torch.cat(values, dim=1)
        elif gated_linear_unit and key.endswith(_GLU_SUFFIXES):
            halves = [torch.chunk(v, 2, dim=0) for v in values]
            merged[key] = torch.cat([g for g, _ in halves] + [u for _, u in halves], dim=0)
        else:
            merged[key] = torch.cat(values, dim=0)
    return merged


def split_tensor_parallel(
    state_dict: Mapping[str, Any], tp_size: int, *, gated_linear_unit: bool
) -> list[dict[str, Any]]:
    """The inverse of ``merge_tensor_parallel_shards``: one state dict per TP rank."""
    shards: list[dict[str, Any]] = [{} for _ in range(tp_size)]
    for key, value in state_dict.items():
        kind = split_kind(key)
        if kind == "replicated" or not isinstance(value, torch.Tensor):
            parts = [value] * tp_size
        else:
            dim = 1 if kind == "row" else 0
            if value.shape[dim] % tp_size:
                raise ValueError(
                    f"{key} of shape {tuple(value.shape)} does not split into {tp_size} parts"
                )
            if gated_linear_unit and key.endswith(_GLU_SUFFIXES):
                gate, up = torch.chunk(value, 2, dim=0)
                parts = [
                    torch.cat((g, u), dim=0)
                    for g, u in zip(torch.chunk(gate, tp_size), torch.chunk(up, tp_size))
                ]
            else:
                parts = [p.clone() for p in torch.chunk(value, tp_size, dim=dim)]
        for rank in range(tp_size):
            shards[rank][key] = parts[rank]
    return shards
