"""Optimizer parameter groups as the original's ``get_megatron_optimizer`` builds them.

Each parameter gets a key ``(wd_mult, lr_mult, is_expert_parallel, is_decoupled_lr)``:

- ``wd_mult`` is 0 for biases and every 1-D parameter (norm weights), else 1;
- ``lr_mult`` is the given multiplier for parameters matching ``scale_lr_cond``, else 1;
- ``is_expert_parallel`` marks parameters that are not all-reduced over data parallel (experts);
- ``is_decoupled_lr`` marks the embedding and output layer when ``--decoupled-lr`` is set.

Parameters with equal keys share a group, in order of first appearance. Every group also gets
``max_lr``/``min_lr``: ``--decoupled-lr``/``--decoupled-min-lr`` (the latter defaulting to
``--min-lr``) for decoupled groups, ``--lr``/``--min-lr`` otherwise. The model package is not
imported: which parameters are the embedding and output layer is told by a predicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from gpt_parallel.collectives import ProcessGroup, all_gather_object

NamedParamPredicate = Callable[[str, torch.nn.Parameter], bool]

PARAM_GROUP_KEYS = ("wd_mult", "lr_mult", "is_expert_parallel", "is_decoupled_lr")


def no_weight_decay(name: str, param: torch.nn.Parameter) -> bool:
    """The original's default: biases and 1-D parameters (norms) get no weight decay."""
    return name.endswith(".bias") or len(param.shape) == 1


def is_embedding_or_output(name: str, param: torch.nn.Parameter) -> bool:
    """Default decoupled-lr predicate: the attribute the model sets on those two weights."""
    return bool(getattr(param, "is_embedding_or_output_parameter", False))


def is_expert_parallel(name: str, param: torch.nn.Parameter) -> bool:
    """Expert parameters are marked ``allreduce=False`` (not reduced over plain DP)."""
    return not getattr(param, "allreduce", True)


def build_param_groups(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
    *,
    lr: float,
    min_lr: float = 0.0,
    decoupled_lr: float | None = None,
    decoupled_min_lr: float | None = None,
    is_decoupled: NamedParamPredicate = is_embedding_or_output,
    no_weight_decay_cond: NamedParamPredicate = no_weight_decay,
    scale_lr_cond: NamedParamPredicate | None = None,
    lr_mult: float = 1.0,
    is_expert: NamedParamPredicate = is_expert_parallel,
    align_group: ProcessGroup | None = None,
) -> list[dict[str, Any]]:
    """Group trainable parameters by their key (see the module docstring).

    With ``align_group``, keys seen on other ranks are appended as empty groups so every rank
    has the same groups, which the distributed checkpoint formats need.
    """
    params_map: dict[tuple, list[torch.nn.Parameter]] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        wd_mult = 0.0 if no_weight_decay_cond(name, param) else 1.0
        group_lr_mult = lr_mult if scale_lr_cond is not None and scale_lr_cond(name, param) else 1.0
        decoupled = decoupled_lr is not None and is_decoupled(name, param)
        key = (wd_mult, group_lr_mult, is_expert(name, param), decoupled)
        params_map.setdefault(key, []).append(param)

    keys = list(params_map)
    for rank_keys in all_gather_object(keys, align_group):
        for key in rank_keys:
            if key not in keys:
                keys.append(key)

    if decoupled_min_lr is None:
        decoupled_min_lr = min_lr
    groups = []
    for key in keys:
        group: dict[str, Any] = {"params": params_map.get(key, [])}
        group.update(zip(PARAM_GROUP_KEYS, key))
        if group["is_decoupled_lr"]:
            group["max_lr"], group["min_lr"] = decoupled_lr, decoupled_min_lr
        else:
            group["max_lr"], group["min_lr"] = lr, min_lr
        groups.append(group)
    return groups
