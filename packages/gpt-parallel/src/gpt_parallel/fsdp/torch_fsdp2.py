"""``--use-torch-fsdp2``: shard a model with torch's ``fully_shard`` over the data-parallel group.

Each transformer layer is one FSDP unit (its parameters are all-gathered just before it runs and
freed after, unless ``reshard_after_forward`` is off) and the root takes what is left: the
embeddings, the final norm and, when tied, the output layer, which reads the word embeddings
inside the root's forward, so tied weights need no special care. FSDP2 replaces every parameter
by a new ``DTensor`` parameter and drops the attributes ours carry (``tensor_model_parallel``,
``partition_dim``, ``is_embedding_or_output_parameter``, ...: checked on torch 2.15), so they are
copied back by name. Works on CPU with gloo (torch 2.15 has every collective FSDP2 uses there).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.distributed.device_mesh import DeviceMesh

from gpt_parallel.collectives import ProcessGroup

# Set by torch on every Parameter; never ours to copy.
_TORCH_ATTRIBUTES = frozenset({"_is_param"})


def dp_mesh(dp_group: ProcessGroup, device_type: str) -> DeviceMesh:
    """A 1-D mesh over ``dp_group`` (no new process group is created)."""
    return DeviceMesh.from_group(dp_group, device_type, mesh_dim_names=("dp",))


def param_tags(model: torch.nn.Module) -> dict[str, dict[str, object]]:
    """Every parameter's custom attributes, by name (what ``fully_shard`` would drop)."""
    return {
        name: {k: v for k, v in vars(p).items() if k not in _TORCH_ATTRIBUTES}
        for name, p in model.named_parameters()
    }


def restore_param_tags(model: torch.nn.Module, tags: dict[str, dict[str, object]]) -> None:
    """Put the attributes saved by ``param_tags`` back on the (new) parameters of the same name."""
    for name, param in model.named_parameters():
        for key, value in tags.get(name, {}).items():
            if not hasattr(param, key):
                setattr(param, key, value)


def default_fsdp_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer layers (``model.decoder.layers`` for GPTModel); empty for other models."""
    decoder = getattr(model, "decoder", None)
    layers = getattr(decoder, "layers", None)
    return list(layers) if layers is not None else []


def apply_torch_fsdp2(
    model: torch.nn.Module,
    dp_group: ProcessGroup,
    *,
    reshard_after_forward: bool = True,
    units: Iterable[torch.nn.Module] | None = None,
) -> torch.nn.Module:
    """Shard ``units`` (default: each transformer layer), then the root, in place; return it.

    ``reshard_after_forward`` is ``not --torch-fsdp2-no-reshard-after-forward``: off keeps the
    gathered layer weights from forward to backward (ZeRO-2-like memory, one all-gather less).
    The model must already sit on its device; the mesh uses that device's type.
    """
    from torch.distributed.fsdp import fully_shard

    if dp_group is None:
        raise ValueError(
            "--use-torch-fsdp2 needs a data-parallel process group (torch.distributed)"
        )
    device = next(model.parameters()).device
    mesh = dp_mesh(dp_group, device.type)
    tags = param_tags(model)
    for unit in default_fsdp_units(model) if units is None else units:
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    restore_param_tags(model, tags)
    return model
