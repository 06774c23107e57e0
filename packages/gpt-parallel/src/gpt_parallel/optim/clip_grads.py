"""Gradient and parameter statistics over the model-parallel ranks, and norm clipping.

A parameter split over tensor-parallel ranks holds a different shard on each, so every rank
counts its shard; a replicated one is counted only on tensor-parallel rank 0; a second copy of
a tied weight (the original marks it ``shared``) is not counted for gradients. The sums of
squares are then added over the group (the model-parallel group for the plain optimizer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from gpt_parallel.collectives import ProcessGroup, all_reduce_

ParamPredicate = Callable[[torch.nn.Parameter], bool]


def is_tensor_parallel_duplicate(param: torch.nn.Parameter, tp_rank: int) -> bool:
    """A replicated (not TP-split) parameter on a tensor-parallel rank other than 0. Routed
    experts (``allreduce=False``) are laid out over the expert grid, not the tensor-parallel
    ranks: each rank's are its own."""
    if not getattr(param, "allreduce", True):
        return False
    return not getattr(param, "tensor_model_parallel", False) and tp_rank != 0


def is_shared(param: torch.nn.Parameter) -> bool:
    """The second copy of a tied weight (the original's ``param.shared``)."""
    return bool(getattr(param, "shared", False))


def counts_for_grad_norm(tp_rank: int) -> ParamPredicate:
    """The original's filter for grad norms and zero counts: not shared, not a TP duplicate."""
    return lambda p: not is_shared(p) and not is_tensor_parallel_duplicate(p, tp_rank)


def counts_for_params_norm(tp_rank: int) -> ParamPredicate:
    """The original's filter for the params norm: not a TP duplicate (shared copies count)."""
    return lambda p: not is_tensor_parallel_duplicate(p, tp_rank)


def _device_of(tensors: list[torch.Tensor]) -> torch.device:
    return tensors[0].device if tensors else torch.device("cpu")


def l2_norm(tensors: Iterable[torch.Tensor], group: ProcessGroup | None = None) -> float:
    """Global L2 norm of ``tensors`` (fp32), summing squares over ``group``."""
    tensors = [t.detach().float() for t in tensors]
    total = torch.zeros(1, dtype=torch.float, device=_device_of(tensors))
    if tensors:
        norms = torch._foreach_norm(tensors, 2.0)
        total = torch.linalg.vector_norm(torch.stack(norms), 2.0).reshape(1) ** 2
    all_reduce_(total, group, "sum")
    return total.item() ** 0.5


def clip_grads_by_total_norm(
    grads: Iterable[torch.Tensor], max_norm: float, total_norm: float
) -> float:
    """Scale ``grads`` in place by ``max_norm / (total_norm + 1e-6)`` when that is below 1.

    Returns the coefficient (1.0 when nothing was scaled).
    """
    grads = list(grads)
    coeff = max_norm / (total_norm + 1.0e-6)
    if coeff < 1.0 and grads:
        torch._foreach_mul_(grads, coeff)
        return coeff
    return 1.0


def count_zeros(grads: Iterable[torch.Tensor], group: ProcessGroup | None = None) -> int:
    """Number of zero entries in ``grads``, summed over ``group``."""
    grads = list(grads)
    total = torch.zeros(1, dtype=torch.int64, device=_device_of(grads))
    for grad in grads:
        total += grad.numel() - torch.count_nonzero(grad)
    all_reduce_(total, group, "sum")
    return int(total.item())


def params_l2_norm(
    params: Iterable[torch.nn.Parameter],
    group: ProcessGroup | None = None,
    counts: ParamPredicate | None = None,
) -> float:
    """L2 norm of the parameters, reading the fp32 ``main_param`` of a bf16/fp16 parameter.

    ``counts`` defaults to every parameter; pass ``counts_for_params_norm(tp_rank)`` with TP.
    """
    data = []
    for param in params:
        if counts is not None and not counts(param):
            continue
        data.append(getattr(param, "main_param", param))
    return l2_norm(data, group)
