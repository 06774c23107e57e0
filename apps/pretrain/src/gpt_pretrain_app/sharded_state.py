"""This rank's model, optimizer and RNG state described as global blocks (gpt_ckpt.sharded),
so a sharded checkpoint (`--ckpt-format torch_dist|torch_dcp|zarr`) saved by one layout loads
into any other.

Keys are the original's: model tensors under their one-process names with GLOBAL layer
numbers (`decoder.layers.{i}.<sub>`, the original's per-layer form), tensor-parallel splits
read from the parameters' tags (stride 2 makes SwiGLU's fc1 the global `[gate; up]`), the
last stage's copy of tied embeddings mapped onto `embedding.word_embeddings.weight`.
Optimizer state is per parameter (`optimizer.state.<name>.<key>`, the "fully reshardable"
form): with the distributed optimizer each data-parallel rank holds flat pieces, so they are
summed into whole (tensor-parallel local) tensors first. Every data-parallel rank then holds
the same blocks; one writes each: data-parallel rank 0, or with `--ckpt-fully-parallel-save`
(the default) the rank a hash of the key picks, so the writing is spread over the group.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from gpt_ckpt.sharded import ShardedObject, ShardedTensor, split_along
from gpt_parallel.collectives import all_gather_object, all_reduce_
from gpt_parallel.fsdp.dtensor_optimizer import is_dtensor
from gpt_parallel.optim import PARAM_GROUP_KEYS
from gpt_parallel.parallel_state import ParallelState
from torch import nn

OPTIMIZER_PREFIX = "optimizer.state"
RNG_KEY = "rng_state"


def _chunks(model: nn.Module) -> list[nn.Module]:
    return list(model) if isinstance(model, nn.ModuleList) else [model]


def _global_name(chunk: nn.Module, name: str) -> str:
    """`decoder.layers.{local}.x` -> `decoder.layers.{global}.x` (0-based)."""
    prefix = "decoder.layers."
    if not name.startswith(prefix):
        return name
    local, rest = name[len(prefix) :].split(".", 1)
    number = chunk.decoder.layers[int(local)].layer_number
    return f"{prefix}{number - 1}.{rest}"


@dataclass(frozen=True)
class ParamEntry:
    """One model tensor: its global key, the tensor, and whether this rank writes it."""

    key: str
    tensor: torch.Tensor
    writes: bool


def writer_dp_rank(key: str, dp_size: int, fully_parallel: bool) -> int:
    """The data-parallel rank that writes the blocks of ``key`` (the same on every rank)."""
    return zlib.crc32(key.encode()) % dp_size if fully_parallel else 0


def model_entries(
    model: nn.Module, state: ParallelState, fully_parallel: bool = False
) -> Iterator[ParamEntry]:
    """Every tensor of this rank's model chunks with its global key (no `_extra_state`)."""
    for chunk in _chunks(model):
        for name, value in chunk.state_dict(keep_vars=True).items():
            if not isinstance(value, torch.Tensor):
                continue
            key = _global_name(chunk, name)
            dp_size = getattr(state, "dp_size", 1)
            writes = state.cp_rank == 0 and state.dp_rank == writer_dp_rank(
                key, dp_size, fully_parallel
            )
            if getattr(value, "shared", False) and name == "output_layer.weight":
                key, writes = "embedding.word_embeddings.weight", False  # the first stage's
            yield ParamEntry(key, value, writes)


def blocks_of(
    key: str, tensor: torch.Tensor, like: torch.Tensor, state: ParallelState, writes: bool
) -> list[ShardedTensor]:
    """`tensor` (shaped like parameter `like`) as its global blocks, split as `like` is."""
    if getattr(like, "tensor_model_parallel", False) and state.tp_size > 1:
        return split_along(
            key,
            tensor,
            dim=like.partition_dim,
            rank=state.tp_rank,
            size=state.tp_size,
            stride=getattr(like, "partition_stride", 1),
            main_replica=writes,
        )
    if getattr(like, "tensor_model_parallel", False):
        return [ShardedTensor.whole(key, tensor, writes)]
    return [ShardedTensor.whole(key, tensor, writes and state.tp_rank == 0)]


def dense(tensor: torch.Tensor) -> torch.Tensor:
    """An FSDP2 ``DTensor`` gathered whole over its data-parallel mesh (collective); a plain
    tensor as it is. Either way: this rank's tensor-parallel slice."""
    return tensor.full_tensor() if is_dtensor(tensor) else tensor


def like(tensor: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``tensor`` (the whole of ``target``'s shape) as ``target`` is held: the same
    ``DTensor`` sharding (each rank keeps its slice, no communication) or plain."""
    tensor = tensor.reshape(target.shape)
    if not is_dtensor(target):
        return tensor
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(tensor, target.device_mesh, target.placements, src_data_rank=None)


def model_blocks(
    model: nn.Module, state: ParallelState, fully_parallel: bool = False
) -> list[ShardedTensor]:
    """The model's blocks to save (FSDP2 parameters gathered first)."""
    out: list[ShardedTensor] = []
    for entry in model_entries(model, state, fully_parallel):
        data = dense(entry.tensor.detach())
        out += blocks_of(entry.key, data, entry.tensor, state, entry.writes)
    return out


def load_model(model: nn.Module, state: Any, read: Any) -> None:
    """Fill the model's parameters from a checkpoint: ``read(blocks)`` fills blocks in place
    (plain parameters directly; FSDP2's through a whole buffer, then each rank's slice)."""
    blocks: list[ShardedTensor] = []
    buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
    for entry in model_entries(model, state):
        target = entry.tensor.detach()
        if is_dtensor(target):
            buffer = torch.empty(target.shape, dtype=target.dtype, device=target.device)
            buffers.append((target, buffer))
            target = buffer
        blocks += blocks_of(entry.key, target, entry.tensor, state, False)
    with torch.no_grad():
        read(blocks)
        for param, buffer in buffers:
            param.to_local().copy_(like(buffer, param).to_local())


# ----------------------------------------------------------------------------- optimizer


@dataclass(frozen=True)
class _Slot:
    """Inner-optimizer parameter `index` stands for elements [start, end) of `model_param`."""

    index: int
    inner: torch.Tensor
    model_param: torch.nn.Parameter
    start: int
    end: int


def _slots(optimizer: Any) -> list[_Slot]:
    """Map every parameter of the inner torch optimizer (in state-dict index order) to the
    model parameter (and flat range) it updates: the parameter itself (fp32), its fp32 main
    copy (fp16/bf16), or a distributed-optimizer piece."""
    inner_params = [p for g in optimizer.optimizer.param_groups for p in g["params"]]
    pieces = getattr(optimizer, "pieces", None)
    slots = []
    for index, inner in enumerate(inner_params):
        if pieces is not None:
            piece = pieces[index]
            slots.append(_Slot(index, inner, piece.param, piece.param_start, piece.param_end))
        else:
            model_param = optimizer.model_param_of(inner)
            slots.append(_Slot(index, inner, model_param, 0, model_param.numel()))
    return slots


def _model_params(optimizer: Any) -> list[torch.nn.Parameter]:
    if hasattr(optimizer, "model_params"):
        return list(optimizer.model_params)
    return [s.model_param for s in _slots(optimizer)]


def _distributed(optimizer: Any) -> bool:
    return hasattr(optimizer, "pieces")


def _has_main_copies(optimizer: Any) -> bool:
    """Whether the inner optimizer updates fp32 copies of the weights (fp16/bf16 models, or
    offloaded pieces), so the copies are state of their own (`fp32_param`)."""
    if _distributed(optimizer):
        return any(p.dtype != torch.float32 for p in _model_params(optimizer)) or any(
            optimizer.offloaded
        )
    return any(s.inner is not s.model_param for s in _slots(optimizer))


def _world() -> Any:
    """The default group (None, meaning no peers, when torch.distributed is not running)."""
    return dist.group.WORLD if dist.is_initialized() else None


def _state_names(optimizer: Any, state: ParallelState) -> list[str]:
    """The per-parameter tensors of the inner optimizer (exp_avg, exp_avg_sq for Adam), the
    same on every rank (a distributed-optimizer rank may own no piece)."""
    mine = sorted(
        {
            name
            for s in optimizer.optimizer.state.values()
            for name, value in s.items()
            if name != "step" and torch.is_tensor(value) and value.dim() > 0
        }
    )
    every = all_gather_object(mine, _world())
    return sorted({name for names in every for name in names})


def _whole_state(
    optimizer: Any, names: list[str], state: ParallelState
) -> dict[int, dict[str, torch.Tensor]]:
    """Per model parameter (by id): each state tensor shaped like the parameter (this rank's
    tensor-parallel slice, whole over data-parallel ranks); `fp32_param` too for fp16/bf16."""
    params = _model_params(optimizer)
    copies = _has_main_copies(optimizer)
    wanted = names + (["fp32_param"] if copies else [])
    whole = {
        id(p): {n: torch.zeros(p.numel(), dtype=torch.float32, device=p.device) for n in wanted}
        for p in params
    }
    inner_state = optimizer.optimizer.state
    for slot in _slots(optimizer):
        target = whole[id(slot.model_param)]
        for name in names:
            value = inner_state.get(slot.inner, {}).get(name)
            if value is not None:
                target[name][slot.start : slot.end] = dense(value.detach()).reshape(-1).float()
        if copies:
            flat = dense(slot.inner.detach()).reshape(-1).float()
            target["fp32_param"][slot.start : slot.end] = flat
    if _distributed(optimizer):
        group = optimizer.ddp.shard_group
        for p in params:
            for tensor in whole[id(p)].values():
                all_reduce_(tensor, group, "sum")
    return {id(p): {n: t.view_as(p) for n, t in whole[id(p)].items()} for p in params}


def _step(optimizer: Any, state: ParallelState) -> float:
    steps = [float(s["step"]) for s in optimizer.optimizer.state.values() if "step" in s]
    value = torch.tensor([max(steps) if steps else 0.0], dtype=torch.float64)
    all_reduce_(value, _world(), "max")
    return float(value.item())


def _hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in g.items() if k != "params"} for g in optimizer.optimizer.param_groups]


def _param_keys(
    model: nn.Module, state: ParallelState, fully_parallel: bool = False
) -> dict[int, tuple[str, bool]]:
    """id(parameter) -> (global key, writes) for this rank's parameters."""
    return {id(e.tensor): (e.key, e.writes) for e in model_entries(model, state, fully_parallel)}


def optimizer_save_blocks(
    optimizer: Any, model: nn.Module, state: ParallelState, fully_parallel: bool = False
) -> tuple[list[ShardedTensor], dict[str, Any]]:
    """The optimizer's per-parameter blocks, and its common part (step, param groups from
    every rank, grad scaler)."""
    names = _state_names(optimizer, state)
    whole = _whole_state(optimizer, names, state)
    keys = _param_keys(model, state, fully_parallel)
    blocks: list[ShardedTensor] = []
    for param in _model_params(optimizer):
        key, writes = keys[id(param)]
        for name, tensor in whole[id(param)].items():
            blocks += blocks_of(f"{OPTIMIZER_PREFIX}.{name}.{key}", tensor, param, state, writes)
    groups = _hyperparameters(optimizer)
    every = all_gather_object(groups, _world())
    merged: dict[tuple, dict[str, Any]] = {}
    for rank_groups in every:
        for group in rank_groups:
            merged.setdefault(tuple(group.get(k) for k in PARAM_GROUP_KEYS), group)
    scaler = getattr(optimizer, "grad_scaler", None)
    common = {
        "param_groups": list(merged.values()),
        "state_names": names,
        "step": _step(optimizer, state),
        "grad_scaler": None if scaler is None else scaler.state_dict(),
    }
    return blocks, common


def optimizer_load(
    optimizer: Any, model: nn.Module, state: ParallelState, common: dict[str, Any], read: Any
) -> None:
    """Fill the optimizer from a checkpoint: `read(blocks)` fills the blocks in place."""
    names = list(common["state_names"])
    copies = _has_main_copies(optimizer)
    wanted = names + (["fp32_param"] if copies else [])
    keys = _param_keys(model, state)
    whole: dict[int, dict[str, torch.Tensor]] = {}
    blocks: list[ShardedTensor] = []
    for param in _model_params(optimizer):
        key, _ = keys[id(param)]
        whole[id(param)] = {}
        for name in wanted:
            tensor = torch.zeros(param.shape, dtype=torch.float32, device=param.device)
            whole[id(param)][name] = tensor
            blocks += blocks_of(f"{OPTIMIZER_PREFIX}.{name}.{key}", tensor, param, state, False)
    read(blocks)
    step = torch.tensor(float(common["step"]), dtype=torch.float32)
    inner_state: dict[int, dict[str, Any]] = {}
    main_params = []
    for slot in _slots(optimizer):
        source = whole[id(slot.model_param)]
        entry: dict[str, Any] = {"step": step.clone()}
        for name in names:
            entry[name] = like(source[name].reshape(-1)[slot.start : slot.end].clone(), slot.inner)
        inner_state[slot.index] = entry
        if copies:
            flat = source["fp32_param"].reshape(-1)[slot.start : slot.end].clone()
            main_params.append(like(flat, slot.inner))
        else:
            main_params.append(slot.inner.detach().clone())
    groups = []
    saved = {tuple(g.get(k) for k in PARAM_GROUP_KEYS): g for g in common["param_groups"]}
    index = 0
    for group in optimizer.optimizer.param_groups:
        settings = dict(saved.get(tuple(group.get(k) for k in PARAM_GROUP_KEYS), {}))
        count = len(group["params"])
        current = {k: v for k, v in group.items() if k != "params"}
        groups.append({**current, **settings, "params": list(range(index, index + count))})
        index += count
    inner = {"state": inner_state, "param_groups": groups}
    scaler = common.get("grad_scaler")
    if _distributed(optimizer):
        optimizer.load_state_dict(
            {
                "optimizer": inner,
                "main_params": main_params,
                "grad_scaler": scaler,
                "shard_layout": optimizer.shard_layout(),
            }
        )
    elif copies:
        slots, per_group, position = _slots(optimizer), [], 0
        for group in optimizer.optimizer.param_groups:  # only the fp16/bf16 params' copies
            span = range(position, position + len(group["params"]))
            per_group.append(
                [main_params[i] for i in span if slots[i].inner is not slots[i].model_param]
            )
            position += len(group["params"])
        content = {"optimizer": inner, "fp32_from_fp16_params": per_group}
        if scaler is not None:
            content["grad_scaler"] = scaler
        optimizer.load_state_dict(content)
    else:
        optimizer.load_state_dict(inner)


# ----------------------------------------------------------------------------- RNG


def rng_object(value: Any, state: ParallelState, per_data_parallel_rank: bool) -> ShardedObject:
    """RNG state as a sharded object over (pp, tp[, dp]), written by its main replica."""
    shape: tuple[int, ...] = (state.pp_size, state.tp_size)
    offset: tuple[int, ...] = (state.pp_rank, state.tp_rank)
    writes = state.cp_rank == 0
    if per_data_parallel_rank:
        shape, offset = shape + (state.dp_size,), offset + (state.dp_rank,)
    else:
        writes = writes and state.dp_rank == 0
    return ShardedObject(RNG_KEY, value, shape, offset, writes)
