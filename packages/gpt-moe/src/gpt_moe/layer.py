"""The MoE layer: route, dispatch, run the local experts, combine, add the shared expert.

Names are the original's: ``router``, ``experts.local_experts.{j}``, ``shared_experts``. The
shared expert is a dense MLP built by the caller (gpt-models, which owns the dense MLP) and
run on every token; its output is added after the routed experts' combine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gpt_fp8.config import FP8Config
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpt_moe.config import MoEConfig
from gpt_moe.dispatch import make_dispatcher
from gpt_moe.experts import Activation, LocalExperts
from gpt_moe.losses import AuxLosses
from gpt_moe.router import TopKRouter


@dataclass(frozen=True)
class MoEGroups:
    """The process groups one MoE layer uses (None: one rank)."""

    expert: Any = None
    """The expert-parallel group (tokens are exchanged over it)."""
    tp_cp: Any = None
    """Tensor x context-parallel group: the router losses sum token counts over it."""


class MoELayer(nn.Module):
    """hidden ``[s, b, h]`` -> (output ``[s, b, h]``, None): the MLP of an MoE layer."""

    def __init__(
        self,
        config: MoEConfig,
        hidden_size: int,
        activation: Activation,
        *,
        gated: bool,
        layer_number: int,
        aux_losses: AuxLosses | None = None,
        groups: MoEGroups = MoEGroups(),
        shared_experts: nn.Module | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        fp8: FP8Config | None = None,
        recompute: tuple[str, ...] = (),
    ) -> None:
        """``fp8``: the run's FP8 settings, for --moe-router-padding-for-fp8 (None: no FP8).
        ``recompute``: the selective recompute modules that act inside the layer (``moe_act``:
        the experts' activation, ``shared_experts``: the shared expert)."""
        super().__init__()
        assert config.num_experts is not None and config.moe_ffn_hidden_size is not None
        self.router = TopKRouter(
            config,
            hidden_size,
            layer_number=layer_number,
            aux_losses=aux_losses,
            tp_cp_group=groups.tp_cp,
            device=device,
            dtype=dtype,
            fp8=fp8,
        )
        self.dispatcher = make_dispatcher(
            config.moe_token_dispatcher_type, config.num_experts, groups.expert
        )
        self.local_expert_indices = self.dispatcher.local
        self.experts = LocalExperts(
            len(self.dispatcher.local),
            hidden_size,
            config.moe_ffn_hidden_size,
            activation,
            gated=gated,
            grouped_gemm=config.moe_grouped_gemm,
            apply_probs_on_input=config.moe_apply_probs_on_input,
            recompute_activation="moe_act" in recompute,
            device=device,
            dtype=dtype,
        )
        self.shared_experts = shared_experts
        self.recompute_shared = "shared_experts" in recompute

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, None]:
        shape = hidden.shape
        probs, routing_map = self.router(hidden)
        flat = hidden.reshape(-1, shape[-1])
        tokens, tokens_per_expert, weights = self.dispatcher.dispatch(flat, probs, routing_map)
        expert_output = self.experts(tokens, tokens_per_expert, weights)
        output = self.dispatcher.combine(expert_output).reshape(shape)
        if self.shared_experts is not None:
            if self.recompute_shared and torch.is_grad_enabled() and self.training:
                shared, _ = checkpoint(self.shared_experts, hidden, use_reentrant=False)
            else:
                shared, _ = self.shared_experts(hidden)
            output = output + shared
        return output, None
