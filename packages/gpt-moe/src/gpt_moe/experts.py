"""The routed experts of one rank: a loop over expert MLPs, or one grouped GEMM.

Each expert is the dense MLP without biases (``linear_fc1`` ``[f or 2f, h]``, activation,
``linear_fc2`` ``[h, f]``), named ``local_experts.{j}`` with ``j`` the local index, as the
original's SequentialMLP. The routing weight of each token multiplies the activation before
``linear_fc2`` (the original's ``per_token_scale``), or the input with
--moe-apply-probs-on-input. ``--moe-grouped-gemm`` runs all local experts as two grouped GEMMs
(torch's ``_grouped_mm`` where it applies, else a padded batched matmul) over the same weights
(state-dict names unchanged), so the two paths are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

Activation = Callable[[torch.Tensor], torch.Tensor]


def swiglu(x: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for fc1's ``[gate; up]`` output."""
    gate, up = torch.chunk(x, 2, dim=-1)
    return F.silu(gate) * up


def activation_for(name: str, gated: bool) -> Activation:
    """The expert nonlinearity for the model's activation name (gelu, silu, squared_relu, ...)."""
    if gated:
        if name != "silu":
            raise ValueError(f"gated experts support swiglu only, not {name}")
        return swiglu
    if name == "gelu":
        return F.gelu
    if name == "openai_gelu":
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "squared_relu":
        return lambda x: torch.square(F.relu(x))
    if name == "silu":
        return F.silu
    raise ValueError(f"unknown expert activation {name!r}")


def recomputed(fn: Activation) -> Activation:
    """``fn`` whose output is not kept for the backward pass while training: recomputed."""

    def run(x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return checkpoint(fn, x, use_reentrant=False)
        return fn(x)

    return run


def mark_expert(param: nn.Parameter) -> None:
    """Tag a routed expert's parameter as the original does (``allreduce=False``): its
    gradient is reduced over the expert-data-parallel ranks only."""
    param.allreduce = False


class ExpertLinear(nn.Module):
    """A bias-free linear ``y = x W^T`` (W ``[out, in]``) with the original's empty
    ``_extra_state`` key."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        mark_expert(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight.t())

    def get_extra_state(self) -> Any:
        return None

    def set_extra_state(self, state: Any) -> None:
        """Accept what the original wrote (None, or FP8 metadata we do not use)."""


class ExpertMLP(nn.Module):
    """One expert: linear_fc1 -> activation (* routing weight) -> linear_fc2."""

    def __init__(
        self,
        hidden_size: int,
        ffn_hidden_size: int,
        activation: Activation,
        *,
        gated: bool,
        recompute_activation: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        halves = 2 if gated else 1
        self.activation = recomputed(activation) if recompute_activation else activation
        self.linear_fc1 = ExpertLinear(
            hidden_size, ffn_hidden_size * halves, device=device, dtype=dtype
        )
        self.linear_fc2 = ExpertLinear(ffn_hidden_size, hidden_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, probs: torch.Tensor | None = None) -> torch.Tensor:
        intermediate = self.activation(self.linear_fc1(x))
        if probs is not None:
            intermediate = (intermediate * probs.unsqueeze(-1)).to(intermediate.dtype)
        return self.linear_fc2(intermediate)


class LocalExperts(nn.Module):
    """This rank's experts, fed the tokens sorted by local expert."""

    def __init__(
        self,
        num_local_experts: int,
        hidden_size: int,
        ffn_hidden_size: int,
        activation: Activation,
        *,
        gated: bool,
        grouped_gemm: bool = False,
        apply_probs_on_input: bool = False,
        recompute_activation: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """``recompute_activation`` (``--recompute-modules moe_act``) keeps only the activation's
        input and recomputes it in the backward pass."""
        super().__init__()
        self.grouped_gemm = grouped_gemm
        self.apply_probs_on_input = apply_probs_on_input
        self.activation = recomputed(activation) if recompute_activation else activation
        self.local_experts = nn.ModuleList(
            ExpertMLP(
                hidden_size,
                ffn_hidden_size,
                activation,
                gated=gated,
                recompute_activation=recompute_activation,
                device=device,
                dtype=dtype,
            )
            for _ in range(num_local_experts)
        )

    def forward(
        self, tokens: torch.Tensor, tokens_per_expert: list[int], probs: torch.Tensor
    ) -> torch.Tensor:
        """tokens ``[n, h]`` grouped by local expert (``tokens_per_expert`` rows each) and their
        routing weights ``[n]`` -> expert outputs ``[n, h]`` in the same order."""
        if self.apply_probs_on_input:
            tokens = (probs.unsqueeze(-1) * tokens).to(tokens.dtype)
            probs = torch.ones_like(probs)
        if self.grouped_gemm:
            return self._grouped(tokens, tokens_per_expert, probs)
        outputs = [
            expert(chunk, chunk_probs)
            for expert, chunk, chunk_probs in zip(
                self.local_experts,
                torch.split(tokens, tokens_per_expert),
                torch.split(probs, tokens_per_expert),
                strict=True,
            )
        ]
        return torch.cat(outputs, dim=0)

    def _grouped(
        self, tokens: torch.Tensor, tokens_per_expert: list[int], probs: torch.Tensor
    ) -> torch.Tensor:
        """All local experts in two grouped GEMMs over the same weights as the loop."""
        w1 = torch.stack([e.linear_fc1.weight for e in self.local_experts])
        w2 = torch.stack([e.linear_fc2.weight for e in self.local_experts])
        if _grouped_mm_fits(tokens, tokens_per_expert, w1, w2):
            offsets = torch.tensor(tokens_per_expert, device=tokens.device).cumsum(0)
            offsets = offsets.to(torch.int32)
            intermediate = self.activation(
                torch._grouped_mm(tokens, w1.transpose(1, 2), offs=offsets)
            )
            intermediate = (intermediate * probs.unsqueeze(-1)).to(intermediate.dtype)
            return torch._grouped_mm(intermediate, w2.transpose(1, 2), offs=offsets)
        return _padded_bmm(tokens, tokens_per_expert, probs, w1, w2, self.activation)


def _grouped_mm_fits(
    tokens: torch.Tensor, tokens_per_expert: list[int], w1: torch.Tensor, w2: torch.Tensor
) -> bool:
    """torch's grouped matmul (``torch._grouped_mm``) takes rows 16-byte aligned, and its
    backward fails on an expert with no tokens (torch 2.15): the padded batched matmul then."""
    if not hasattr(torch, "_grouped_mm") or min(tokens_per_expert, default=0) == 0:
        return False
    per_16_bytes = max(16 // tokens.element_size(), 1)
    sizes = (tokens.shape[-1], w1.shape[1], w2.shape[1])
    return all(size % per_16_bytes == 0 for size in sizes)


def _padded_bmm(
    tokens: torch.Tensor,
    tokens_per_expert: list[int],
    probs: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    activation: Activation,
) -> torch.Tensor:
    """The experts as batched matmuls: each expert's rows padded to the longest group,
    ``[n_experts, rows, h] @ [n_experts, h, f]``, then the padding dropped."""
    n, rows = len(tokens_per_expert), max(tokens_per_expert, default=0)
    if rows == 0:
        return tokens.new_zeros(tokens.shape)
    expert_of = torch.repeat_interleave(
        torch.arange(n, device=tokens.device),
        torch.tensor(tokens_per_expert, device=tokens.device),
    )
    starts = torch.tensor([0, *tokens_per_expert[:-1]], device=tokens.device).cumsum(0)
    slot = torch.arange(tokens.shape[0], device=tokens.device) - starts[expert_of]
    padded = tokens.new_zeros(n, rows, tokens.shape[-1]).index_put((expert_of, slot), tokens)
    intermediate = activation(torch.bmm(padded, w1.transpose(1, 2)))
    scale = probs.new_zeros(n, rows).index_put((expert_of, slot), probs)
    intermediate = (intermediate * scale.unsqueeze(-1)).to(intermediate.dtype)
    out = torch.bmm(intermediate, w2.transpose(1, 2))
    return out[expert_of, slot]
