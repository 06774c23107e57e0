"""Load-balancing and z losses, how they join the backward pass, and how they are logged.

The original never adds its router losses to the language-model loss: it attaches each one to
an activation (``MoEAuxLossAutoScaler``), whose backward injects d(aux)/d(aux) = the main
loss's backward scale (loss scale / micro-batches). ``AuxLossScaler`` does the same, with the
scale held by one ``AuxLosses`` object per model instead of a class attribute, and ``AuxLosses``
also collects the logged values per layer (the original's layer-wise tracker), which the
training loop reduces and prints once per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from gpt_parallel.comm.basic import all_reduce_
from gpt_parallel.comm.groups import group_size

#: The log names, in the order the original's tracker may hold them.
LOAD_BALANCING = "load_balancing_loss"
SEQ_LOAD_BALANCING = "seq_load_balancing_loss"
Z_LOSS = "z_loss"


def recomputing() -> bool:
    """Whether this forward is activation recomputation inside the backward pass (its losses
    and token counts were already recorded by the first forward)."""
    return torch._C._current_graph_task_id() != -1


def switch_load_balancing_loss(
    scores: torch.Tensor,
    tokens_per_expert: torch.Tensor,
    total_num_tokens: int,
    topk: int,
    num_experts: int,
    coeff: float,
) -> torch.Tensor:
    """coeff * E * sum_i f_i * P_i (Switch Transformer / GShard).

    f_i = tokens_per_expert_i / (T * k) and P_i = sum of the scores of expert i / T, with T =
    ``total_num_tokens``; ``scores`` may be this rank's share of the tokens (P_i is then this
    rank's part of the sum)."""
    aggregated = scores.sum(dim=0)
    return torch.sum(aggregated * tokens_per_expert) * (
        num_experts * coeff / (topk * total_num_tokens * total_num_tokens)
    )


def sequence_load_balancing_loss(
    scores: torch.Tensor,
    tokens_per_sequence_expert: torch.Tensor,
    seq_length: int,
    total_seq_length: int,
    batch_size: int,
    topk: int,
    num_experts: int,
    coeff: float,
) -> torch.Tensor:
    """The DeepSeek-V2 per-sequence loss, averaged over the sequences of the micro-batch.

    Tokens are ``[s, b]`` flattened, so viewing the scores as ``[s, b * E]`` puts each
    sequence's experts side by side; the switch loss over that view (with
    ``tokens_per_sequence_expert`` ``[b * E]`` counted the same way and ``total_seq_length``
    the whole sequence when ranks hold parts of it) is the sum of the per-sequence losses."""
    return (
        switch_load_balancing_loss(
            scores.reshape(seq_length, -1),
            tokens_per_sequence_expert,
            total_seq_length,
            topk,
            num_experts,
            coeff,
        )
        / batch_size
    )


def z_loss(logits: torch.Tensor, coeff: float) -> torch.Tensor:
    """coeff * mean over tokens of logsumexp(logits)^2 (ST-MoE): keeps router logits small."""
    return torch.mean(torch.square(torch.logsumexp(logits, dim=-1))) * coeff


class AuxLossScaler(torch.autograd.Function):
    """Identity on ``output``; in backward, feeds ``scale`` as the gradient of ``aux_loss``."""

    @staticmethod
    def forward(ctx: Any, output: torch.Tensor, aux_loss: torch.Tensor, scale: torch.Tensor):
        ctx.save_for_backward(aux_loss, scale)
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor):
        aux_loss, scale = ctx.saved_tensors
        return grad_output, torch.ones_like(aux_loss) * scale.to(aux_loss.dtype), None


@dataclass
class AuxLosses:
    """One model's router losses: the backward scale and the logged values per layer.

    ``num_layers`` counts decoder plus MTP layers (the tracker's slots, by global 1-based layer
    number); ``num_moe_layers`` is what the printed value is averaged over."""

    num_layers: int
    num_moe_layers: int
    scale: torch.Tensor = field(default_factory=lambda: torch.ones(()))
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    reduce_groups: dict[str, Any] = field(default_factory=dict)
    per_token_loss: bool = False
    """--calculate-per-token-loss: each loss is multiplied by its token count before backward
    (the main loss is a token sum there, not a mean)."""

    def set_scale(self, scale: float | torch.Tensor) -> None:
        """The main loss's backward scale for this micro-batch (loss scale / micro-batches,
        or the loss scale alone with --calculate-per-token-loss)."""
        self.scale = torch.as_tensor(scale, dtype=torch.float32).reshape(()).detach().clone()

    def attach(self, activation: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        """``activation`` ``[tokens, ...]`` unchanged, with ``loss`` joined to its backward."""
        if not (torch.is_grad_enabled() and activation.requires_grad):
            return activation
        if self.per_token_loss:
            loss = loss * activation.shape[0]
        return AuxLossScaler.apply(activation, loss, self.scale.to(activation.device))

    def record(self, name: str, value: torch.Tensor, layer_number: int, group: Any = None) -> None:
        """Add ``value`` (the loss divided by its coefficient) to the layer's slot (once: not
        again when recomputation re-runs the layer)."""
        if recomputing():
            return
        if name not in self.values:
            self.values[name] = torch.zeros(self.num_layers, device=value.device)
        self.values[name][layer_number - 1] += value.detach().float()
        self.reduce_groups[name] = group

    def ensure(self, names: tuple[str, ...], device: torch.device | str) -> None:
        """Make the slots of ``names`` exist (zero) so every rank reduces the same tensors."""
        for name in names:
            if name not in self.values:
                self.values[name] = torch.zeros(self.num_layers, device=device)

    def reduce(self, pipeline_group: Any = None, data_parallel_group: Any = None) -> None:
        """The original's reduction before logging: sum over pipeline stages and the loss's
        own group, then average over the data(-and-context)-parallel ranks."""
        for name, values in self.values.items():
            all_reduce_(values, pipeline_group, "sum")
            all_reduce_(values, self.reduce_groups.get(name), "sum")
            all_reduce_(values, data_parallel_group, "sum")
            values.div_(group_size(data_parallel_group))

    def report(self, num_microbatches: int) -> dict[str, float]:
        """The logged values: each name's layer sum / micro-batches / MoE layers."""
        scale = 1.0 / num_microbatches
        return {
            name: float((values * scale).sum().item()) / self.num_moe_layers
            for name, values in self.values.items()
        }

    def clear(self) -> None:
        for values in self.values.values():
            values.zero_()
