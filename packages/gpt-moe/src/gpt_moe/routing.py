"""Top-k routing math: scores, expert choice, capacity and token dropping (pure functions).

Shapes: ``logits`` / ``scores`` / ``probs`` are ``[tokens, experts]``; a routing map is a bool
``[tokens, experts]`` with ``topk`` True entries per row (fewer after dropping). The formulas
are the original's (megatron/core/transformer/moe/moe_utils.py, core_v0.14), so the same
logits select the same experts with the same weights.
"""

from __future__ import annotations

import math

import torch

SCORE_FUNCTIONS = ("softmax", "sigmoid")
DROP_POLICIES = ("probs", "position")


def group_limited_topk(
    scores: torch.Tensor, topk: int, num_groups: int, group_topk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k restricted to the ``group_topk`` best of ``num_groups`` equal expert groups.

    A group's score is the sum of its best ``topk // group_topk`` expert scores (DeepSeek's
    device- and node-limited routing)."""
    num_tokens, num_experts = scores.shape
    per_group = scores.view(num_tokens, num_groups, -1)
    group_scores = per_group.topk(topk // group_topk, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, k=group_topk, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = (
        group_mask.unsqueeze(-1)
        .expand(num_tokens, num_groups, num_experts // num_groups)
        .reshape(num_tokens, -1)
    )
    masked = scores.masked_fill(~score_mask.bool(), float("-inf"))
    return torch.topk(masked, k=topk, dim=-1)


def _topk(
    scores: torch.Tensor, topk: int, num_groups: int | None, group_topk: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if group_topk:
        assert num_groups is not None
        return group_limited_topk(scores, topk, num_groups, group_topk)
    return torch.topk(scores, k=topk, dim=1)


def topk_routing(
    logits: torch.Tensor,
    topk: int,
    *,
    pre_softmax: bool = False,
    num_groups: int | None = None,
    group_topk: int | None = None,
    scaling_factor: float | None = None,
    score_function: str = "softmax",
    expert_bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs [T, E] with zeros off the chosen experts, routing map [T, E]).

    softmax: without ``pre_softmax`` the softmax runs over the k chosen logits only (the
    weights of a token sum to 1); with it over all experts, then the top k are kept.
    sigmoid: the k best sigmoid scores (chosen on score + ``expert_bias`` when given, the
    aux-loss-free balancing) are normalised to sum to 1 when k > 1. ``scaling_factor``
    multiplies the weights last."""
    if logits.dim() != 2:
        raise ValueError(f"expected 2-D logits [tokens, experts], got {tuple(logits.shape)}")
    if score_function == "softmax":
        if pre_softmax:
            scores = torch.softmax(logits, dim=-1, dtype=torch.float32).type_as(logits)
            probs, top_indices = _topk(scores, topk, num_groups, group_topk)
        else:
            chosen, top_indices = _topk(logits, topk, num_groups, group_topk)
            probs = torch.softmax(chosen, dim=-1, dtype=torch.float32).type_as(logits)
    elif score_function == "sigmoid":
        scores = torch.sigmoid(logits.float()).type_as(logits)
        if expert_bias is not None:
            _, top_indices = _topk(scores + expert_bias, topk, num_groups, group_topk)
            scores = torch.gather(scores, dim=1, index=top_indices).type_as(logits)
        else:
            scores, top_indices = _topk(scores, topk, num_groups, group_topk)
        probs = scores / (scores.sum(dim=-1, keepdim=True) + 1e-20) if topk > 1 else scores
    else:
        raise ValueError(
            f"--moe-router-score-function {score_function!r} is not one of softmax, sigmoid"
        )
    if scaling_factor:
        probs = probs * scaling_factor
    routing_probs = torch.zeros_like(logits).scatter(1, top_indices, probs)
    routing_map = torch.zeros_like(logits, dtype=torch.int).scatter(1, top_indices, 1).bool()
    return routing_probs, routing_map


def scores_for_aux_loss(
    logits: torch.Tensor, topk: int, score_function: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(routing map, scores) the load-balancing losses use: the plain top-k of the softmax (or
    of the normalised sigmoid), without groups, bias or scaling."""
    if score_function == "softmax":
        scores = torch.softmax(logits, dim=-1, dtype=torch.float32)
    elif score_function == "sigmoid":
        scores = torch.sigmoid(logits)
        scores = scores / (scores.sum(dim=-1, keepdim=True) + 1e-20)
    else:
        raise ValueError(
            f"--moe-router-score-function {score_function!r} is not one of softmax, sigmoid"
        )
    _, top_indices = torch.topk(scores, k=topk, dim=1)
    routing_map = torch.zeros_like(logits, dtype=torch.int).scatter(1, top_indices, 1).bool()
    return routing_map, scores


def sinkhorn(cost: torch.Tensor, tol: float = 0.0001) -> torch.Tensor:
    """Sinkhorn balancing of exp(cost) (S-BASE): rows and columns scaled until stable."""
    cost = torch.exp(cost)
    d0 = torch.ones(cost.size(0), device=cost.device, dtype=cost.dtype)
    d1 = torch.ones(cost.size(1), device=cost.device, dtype=cost.dtype)
    eps = 0.00000001
    error = 1e9
    d1_old = d1
    while error > tol:
        d0 = (1 / d0.size(0)) * 1 / (torch.sum(d1 * cost, 1) + eps)
        d1 = (1 / d1.size(0)) * 1 / (torch.sum(d0.unsqueeze(1) * cost, 0) + eps)
        error = torch.mean(torch.abs(d1_old - d1))
        d1_old = d1
    return d1 * cost * d0.unsqueeze(1)


def sinkhorn_routing(
    logits: torch.Tensor, topk: int, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores on the chosen experts, routing map) of --moe-router-load-balancing-type sinkhorn:
    experts chosen on the balanced assignment while training, weighted by sigmoid (k = 1) or
    softmax (k > 1) of the raw logits."""

    def activation(x: torch.Tensor) -> torch.Tensor:
        if topk == 1:
            return torch.sigmoid(x)
        return torch.softmax(x, dim=-1, dtype=torch.float32).type_as(x)

    if training:
        with torch.no_grad():
            _, indices = torch.topk(sinkhorn(logits.to(torch.float32)), k=topk, dim=1)
        logits = activation(logits)
    else:
        logits = activation(logits)
        _, indices = torch.topk(logits, k=topk, dim=1)
    routing_map = torch.zeros_like(logits, dtype=torch.int).scatter(1, indices, 1).bool()
    return logits * routing_map, routing_map


def expert_capacity(num_tokens: int, num_experts: int, capacity_factor: float) -> int:
    """Tokens one expert takes: ceil(num_tokens / num_experts * capacity_factor)."""
    return math.ceil((num_tokens / num_experts) * capacity_factor)


def drop_tokens(
    probs: torch.Tensor,
    routing_map: torch.Tensor,
    topk: int,
    capacity_factor: float,
    drop_policy: str = "probs",
    pad_to_capacity: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep at most ``capacity`` tokens per expert (capacity from T * k assignments).

    ``probs`` keeps each expert's highest-weighted tokens, ``position`` its earliest ones.
    With ``pad_to_capacity`` every expert gets exactly ``capacity`` rows (the kept ones plus
    zero-weight fillers), so shapes do not depend on the routing."""
    if drop_policy not in DROP_POLICIES:
        raise ValueError(f"--moe-token-drop-policy {drop_policy!r} is not one of probs, position")
    num_tokens, num_experts = probs.shape
    capacity = expert_capacity(num_tokens * topk, num_experts, capacity_factor)
    capacity = min(capacity, num_tokens)
    ranking = probs if drop_policy == "probs" else _position_ranking(routing_map)
    _, kept = torch.topk(ranking, k=capacity, dim=0, sorted=False)
    capacity_mask = torch.zeros_like(probs).scatter(0, kept, 1).bool()
    final_map = capacity_mask if pad_to_capacity else routing_map & capacity_mask
    return probs * final_map, final_map


def _position_ranking(routing_map: torch.Tensor) -> torch.Tensor:
    """Routed tokens first, earlier positions before later ones (a strict order, so the
    choice does not depend on how topk breaks ties)."""
    num_tokens = routing_map.shape[0]
    later = torch.arange(num_tokens, device=routing_map.device, dtype=torch.float32)
    order = 1.0 - later.unsqueeze(1) / (num_tokens + 1)
    return routing_map.float() * 2.0 + order


def updated_expert_bias(
    tokens_per_expert: torch.Tensor, expert_bias: torch.Tensor, update_rate: float
) -> torch.Tensor:
    """One aux-loss-free balancing step: raise the bias of experts below the mean load by
    ``update_rate``, lower those above (``tokens_per_expert`` already summed over the batch)."""
    average = tokens_per_expert.sum(dim=-1, keepdim=True) / tokens_per_expert.shape[-1]
    return expert_bias + torch.sign(average - tokens_per_expert) * update_rate


def pad_routing_map(routing_map: torch.Tensor, multiple: int) -> torch.Tensor:
    """Route extra (zero-weight) tokens to each expert until its count is a multiple of
    ``multiple`` (--moe-router-padding-for-fp8: FP8 GEMMs want row counts aligned), taking
    each expert's first unrouted tokens."""
    by_expert = routing_map.t().clone()
    missing = (-by_expert.sum(dim=1)) % multiple
    free_rank = torch.cumsum((~by_expert).int(), dim=1)
    by_expert |= (~by_expert) & (free_rank <= missing.unsqueeze(1))
    return by_expert.t().contiguous()
