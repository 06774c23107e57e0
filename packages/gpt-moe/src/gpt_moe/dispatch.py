"""Token dispatchers: bring each token to the ranks holding its experts, and back.

``allgather``: every rank of the expert group gathers all tokens, keeps those routed to its
local experts, and the partial outputs are summed back with a reduce-scatter.
``alltoall``: each rank sends each token only to the rank of each expert it chose (one
all-to-all with uneven splits), the experts run, a second all-to-all returns the outputs.
Both sort the tokens by expert (``permute``) and scatter-add them back (``unpermute``) as the
original's moe_utils do; with one rank both are the same local computation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from gpt_parallel.comm.groups import group_rank, group_size
from gpt_parallel.tensor_parallel.mappings import (
    gather_from_sequence_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
)

DISPATCHERS = ("allgather", "alltoall")


def permute(
    tokens: torch.Tensor, routing_map: torch.Tensor, probs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens grouped by expert, their routing weights, the source row of each).

    ``routing_map`` / ``probs`` ``[T, E]``; within one expert the tokens keep their order."""
    num_tokens = tokens.shape[0]
    by_expert = routing_map.bool().t().contiguous()
    rows = torch.arange(num_tokens, device=tokens.device).unsqueeze(0).expand_as(by_expert)
    sorted_indices = rows.masked_select(by_expert)
    permuted_probs = probs.t().contiguous().masked_select(by_expert)
    return tokens.index_select(0, sorted_indices), permuted_probs, sorted_indices


def unpermute(
    permuted: torch.Tensor, sorted_indices: torch.Tensor, num_tokens: int
) -> torch.Tensor:
    """Sum each expert output back into its source row (rows no expert took stay zero)."""
    hidden = permuted.shape[-1]
    out = permuted.new_zeros(num_tokens, hidden)
    return out.scatter_add(0, sorted_indices.unsqueeze(1).expand(-1, hidden), permuted)


class _AllToAll(torch.autograd.Function):
    """all_to_all_single with uneven splits; its backward is the reverse exchange."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any, out_splits: list[int], in_splits: list[int]):
        ctx.group, ctx.out_splits, ctx.in_splits = group, out_splits, in_splits
        x = x.contiguous()
        out = x.new_empty((sum(out_splits), *x.shape[1:]))
        dist.all_to_all_single(out, x, out_splits, in_splits, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        grad = grad.contiguous()
        out = grad.new_empty((sum(ctx.in_splits), *grad.shape[1:]))
        dist.all_to_all_single(out, grad, ctx.in_splits, ctx.out_splits, group=ctx.group)
        return out, None, None, None


def all_to_all(
    x: torch.Tensor, group: Any, out_splits: list[int], in_splits: list[int]
) -> torch.Tensor:
    """Send ``in_splits[r]`` rows to rank r, receive ``out_splits[r]`` rows from it."""
    if group_size(group) == 1:
        return x
    return _AllToAll.apply(x, group, out_splits, in_splits)


def local_expert_indices(num_experts: int, ep_rank: int, ep_size: int) -> range:
    """The global indices of the experts an expert-parallel rank holds (a contiguous block)."""
    per_rank = num_experts // ep_size
    return range(ep_rank * per_rank, (ep_rank + 1) * per_rank)


class AllGatherDispatcher:
    """Gather every token of the expert group, keep this rank's experts' share."""

    def __init__(self, num_experts: int, local_experts: range, group: Any = None) -> None:
        self.num_experts = num_experts
        self.local = local_experts
        self.group = group

    def dispatch(
        self, hidden: torch.Tensor, probs: torch.Tensor, routing_map: torch.Tensor
    ) -> tuple[torch.Tensor, list[int], torch.Tensor]:
        """hidden ``[T, h]`` -> (tokens grouped by local expert, rows per expert, weights)."""
        self.local_tokens = hidden.shape[0]
        if group_size(self.group) > 1:
            hidden = gather_from_sequence_parallel_region(hidden, self.group)
            probs = gather_from_sequence_parallel_region(probs, self.group)
            routing_map = _gather_no_grad(routing_map, self.group)
        local = slice(self.local.start, self.local.stop)
        local_map = routing_map[:, local]
        self.gathered_tokens = hidden.shape[0]
        permuted, permuted_probs, self.sorted_indices = permute(hidden, local_map, probs[:, local])
        return permuted, local_map.sum(dim=0).tolist(), permuted_probs

    def combine(self, expert_output: torch.Tensor) -> torch.Tensor:
        """Expert outputs -> ``[T, h]`` in this rank's token order."""
        out = unpermute(expert_output, self.sorted_indices, self.gathered_tokens)
        if group_size(self.group) > 1:
            out = reduce_scatter_to_sequence_parallel_region(out, self.group)
        return out


class AllToAllDispatcher:
    """Exchange each token with the expert-parallel ranks of the experts it chose."""

    def __init__(self, num_experts: int, local_experts: range, group: Any = None) -> None:
        self.num_experts = num_experts
        self.local = local_experts
        self.group = group
        self.ep_size = group_size(group)
        self.num_local = len(local_experts)

    def dispatch(
        self, hidden: torch.Tensor, probs: torch.Tensor, routing_map: torch.Tensor
    ) -> tuple[torch.Tensor, list[int], torch.Tensor]:
        ep, nle = self.ep_size, self.num_local
        self.num_tokens = hidden.shape[0]
        self.routing_map = routing_map
        per_expert = routing_map.sum(dim=0).to(torch.long)
        self.input_splits = per_expert.reshape(ep, nle).sum(dim=1).tolist()
        if ep > 1:
            gathered = [torch.empty_like(per_expert) for _ in range(ep)]
            dist.all_gather(gathered, per_expert, group=self.group)
            global_per_expert = torch.stack(gathered)  # [source rank, expert]
        else:
            global_per_expert = per_expert.unsqueeze(0)
        mine = global_per_expert[:, self.local.start : self.local.stop]  # [rank, local expert]
        self.output_splits = mine.sum(dim=1).tolist()
        self.rank_major_sizes = mine.reshape(-1).tolist()
        self.expert_major_sizes = mine.t().reshape(-1).tolist()
        permuted, permuted_probs, self.sorted_indices = permute(hidden, routing_map, probs)
        tokens = all_to_all(permuted, self.group, self.output_splits, self.input_splits)
        weights = all_to_all(permuted_probs, self.group, self.output_splits, self.input_splits)
        if nle > 1 and ep > 1:
            order = torch.arange(ep * nle).reshape(ep, nle).t().reshape(-1).tolist()
            tokens = _sort_chunks(tokens, self.rank_major_sizes, order)
            weights = _sort_chunks(weights, self.rank_major_sizes, order)
        return tokens, mine.sum(dim=0).tolist(), weights

    def combine(self, expert_output: torch.Tensor) -> torch.Tensor:
        ep, nle = self.ep_size, self.num_local
        if nle > 1 and ep > 1:
            order = torch.arange(ep * nle).reshape(nle, ep).t().reshape(-1).tolist()
            expert_output = _sort_chunks(expert_output, self.expert_major_sizes, order)
        back = all_to_all(expert_output, self.group, self.input_splits, self.output_splits)
        return unpermute(back, self.sorted_indices, self.num_tokens)


def _sort_chunks(x: torch.Tensor, sizes: list[int], order: list[int]) -> torch.Tensor:
    chunks = torch.split(x, sizes, dim=0)
    return torch.cat([chunks[i] for i in order], dim=0)


def _gather_no_grad(x: torch.Tensor, group: Any) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(group_size(group))]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts, dim=0)


def make_dispatcher(
    kind: str, num_experts: int, group: Any = None
) -> AllGatherDispatcher | AllToAllDispatcher:
    """The dispatcher for --moe-token-dispatcher-type over the expert group ``group``."""
    size, rank = group_size(group), group_rank(group)
    local = local_expert_indices(num_experts, rank, size)
    if kind == "allgather":
        return AllGatherDispatcher(num_experts, local, group)
    if kind == "alltoall":
        return AllToAllDispatcher(num_experts, local, group)
    raise ValueError(f"--moe-token-dispatcher-type {kind!r} is not one of allgather, alltoall")
