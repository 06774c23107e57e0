"""The top-k router: gating linear, routing, token dropping, and the router losses.

State-dict names are the original's: ``weight`` ``[E, h]`` and, with
--moe-router-enable-expert-bias, the fp32 buffer ``expert_bias`` ``[E]``. The tokens each expert
received since the last bias update are counted in ``local_tokens_per_expert`` (not saved); the
training loop calls ``update_expert_bias`` once per global batch, after the last backward.
"""

from __future__ import annotations

from typing import Any

import torch
from gpt_fp8.config import FP8Config
from gpt_parallel.comm.groups import group_size
from gpt_parallel.tensor_parallel.mappings import reduce_from_tensor_parallel_region
from torch import nn

from gpt_moe import routing
from gpt_moe.config import MoEConfig
from gpt_moe.losses import (
    LOAD_BALANCING,
    SEQ_LOAD_BALANCING,
    Z_LOSS,
    AuxLosses,
    recomputing,
    sequence_load_balancing_loss,
    switch_load_balancing_loss,
    z_loss,
)

ROUTER_DTYPES = {None: None, "fp32": torch.float32, "fp64": torch.float64}


def fp8_row_alignment(config: MoEConfig, fp8: FP8Config | None) -> int | None:
    """Rows per expert must be a multiple of this with --moe-router-padding-for-fp8 under FP8
    (32 for the MXFP8 recipe, 16 otherwise); None when no padding applies."""
    if not config.moe_router_padding_for_fp8 or fp8 is None or fp8.fp8 is None:
        return None
    return 32 if fp8.fp8_recipe == "mxfp8" else 16


def load_balancing_types(config: MoEConfig) -> tuple[str, ...]:
    """--moe-router-load-balancing-type as a tuple (one or several types)."""
    value = config.moe_router_load_balancing_type
    return (value,) if isinstance(value, str) else tuple(value)


def aux_loss_coeff(config: MoEConfig, loss_type: str) -> float:
    """The coefficient of ``loss_type`` (0 when that type is not used): with several types,
    --moe-aux-loss-coeff gives one value per type, in the same order."""
    types = load_balancing_types(config)
    coeffs = config.moe_aux_loss_coeff
    coeffs = list(coeffs) if isinstance(coeffs, list | tuple) else [coeffs]
    if loss_type not in types:
        return 0.0
    index = types.index(loss_type)
    return float(coeffs[index]) if index < len(coeffs) else 0.0


class TopKRouter(nn.Module):
    """Scores every token against every expert and picks its top-k experts."""

    def __init__(
        self,
        config: MoEConfig,
        hidden_size: int,
        *,
        layer_number: int,
        aux_losses: AuxLosses | None = None,
        tp_cp_group: Any = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        jitter_generator: torch.Generator | None = None,
        fp8: FP8Config | None = None,
    ) -> None:
        super().__init__()
        assert config.num_experts is not None
        self.config = config
        self.num_experts = config.num_experts
        self.topk = config.moe_router_topk
        self.layer_number = layer_number
        self.aux_losses = aux_losses
        self.tp_cp_group = tp_cp_group
        self.router_dtype = ROUTER_DTYPES[config.moe_router_dtype]
        self.jitter_generator = jitter_generator
        self.pad_multiple = fp8_row_alignment(config, fp8)
        self.weight = nn.Parameter(
            torch.empty(self.num_experts, hidden_size, device=device, dtype=dtype)
        )
        if config.moe_router_enable_expert_bias:
            self.register_buffer(
                "local_tokens_per_expert",
                torch.zeros(self.num_experts, dtype=torch.float32, device=device),
                persistent=False,
            )
            self.register_buffer(
                "expert_bias", torch.zeros(self.num_experts, dtype=torch.float32, device=device)
            )
        else:
            self.local_tokens_per_expert = None
            self.expert_bias = None

    # ------------------------------------------------------------------ pieces ----------
    def gating(self, hidden: torch.Tensor) -> torch.Tensor:
        """Router logits ``[..., E]`` in the router dtype (the input's when unset)."""
        dtype = self.router_dtype or hidden.dtype
        flat = hidden.reshape(-1, hidden.shape[-1]).to(dtype)
        logits = torch.mm(flat, self.weight.to(dtype).t())
        return logits.view(*hidden.shape[:-1], -1)

    def apply_input_jitter(self, hidden: torch.Tensor) -> torch.Tensor:
        """Multiply the input by U(1 - eps, 1 + eps) noise (--moe-input-jitter-eps)."""
        eps = self.config.moe_input_jitter_eps
        if eps is None or not self.training:
            return hidden
        noise = torch.rand(hidden.shape, generator=self.jitter_generator, dtype=torch.float32)
        noise = (1.0 - eps) + noise.to(hidden.device) * (2.0 * eps)
        return hidden * noise.to(hidden.dtype)

    def _training_step(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def _attach(self, activation: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        assert self.aux_losses is not None
        return self.aux_losses.attach(activation, loss)

    def apply_z_loss(self, logits: torch.Tensor) -> torch.Tensor:
        coeff = self.config.moe_z_loss_coeff
        if coeff is None or not self._training_step() or self.aux_losses is None:
            return logits
        coeff = coeff / group_size(self.tp_cp_group)
        loss = z_loss(logits, coeff)
        logits = self._attach(logits, loss)
        self.aux_losses.record(Z_LOSS, loss / coeff, self.layer_number)
        return logits

    def _apply_load_balancing(
        self, probs: torch.Tensor, logits: torch.Tensor, seq_length: int, batch_size: int
    ) -> torch.Tensor:
        aux = aux_loss_coeff(self.config, "aux_loss")
        seq = aux_loss_coeff(self.config, "seq_aux_loss")
        if (aux <= 0 and seq <= 0) or not self._training_step() or self.aux_losses is None:
            return probs
        score_function = self.config.moe_router_score_function
        aux_map, scores = routing.scores_for_aux_loss(logits, self.topk, score_function)
        ranks = group_size(self.tp_cp_group)
        if aux > 0:
            tokens_per_expert = reduce_from_tensor_parallel_region(
                aux_map.sum(dim=0), self.tp_cp_group
            )
            total = aux_map.shape[0] * ranks
            loss = switch_load_balancing_loss(
                scores, tokens_per_expert, total, self.topk, self.num_experts, aux
            )
            probs = self._attach(probs, loss)
            self.aux_losses.record(LOAD_BALANCING, loss / aux, self.layer_number, self.tp_cp_group)
        if seq > 0:
            per_sequence = aux_map.reshape(seq_length, -1).sum(dim=0)
            per_sequence = reduce_from_tensor_parallel_region(per_sequence, self.tp_cp_group)
            loss = sequence_load_balancing_loss(
                scores,
                per_sequence,
                seq_length,
                seq_length * ranks,
                batch_size,
                self.topk,
                self.num_experts,
                seq,
            )
            probs = self._attach(probs, loss)
            self.aux_losses.record(
                SEQ_LOAD_BALANCING, loss / seq, self.layer_number, self.tp_cp_group
            )
        return probs

    # ----------------------------------------------------------------- routing ----------
    def routing(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logits ``[s, b, E]`` -> (probs ``[s*b, E]``, routing map ``[s*b, E]``)."""
        seq_length, batch_size = logits.shape[:2]
        logits = logits.reshape(-1, self.num_experts)
        logits = self.apply_z_loss(logits)
        config = self.config
        if "sinkhorn" in load_balancing_types(config):
            probs, routing_map = routing.sinkhorn_routing(logits, self.topk, self.training)
        else:
            probs, routing_map = routing.topk_routing(
                logits,
                self.topk,
                pre_softmax=config.moe_router_pre_softmax,
                num_groups=config.moe_router_num_groups,
                group_topk=config.moe_router_group_topk,
                scaling_factor=config.moe_router_topk_scaling_factor,
                score_function=config.moe_router_score_function,
                expert_bias=self.expert_bias,
            )
        if config.moe_expert_capacity_factor is not None:
            probs, routing_map = routing.drop_tokens(
                probs,
                routing_map,
                self.topk,
                config.moe_expert_capacity_factor,
                config.moe_token_drop_policy,
                config.moe_pad_expert_input_to_capacity,
            )
        if self.pad_multiple is not None:
            routing_map = routing.pad_routing_map(routing_map, self.pad_multiple)
        probs = self._apply_load_balancing(probs, logits, seq_length, batch_size)
        if (
            self.local_tokens_per_expert is not None
            and torch.is_grad_enabled()
            and not recomputing()
        ):
            with torch.no_grad():
                self.local_tokens_per_expert += routing_map.sum(dim=0)
        return probs, routing_map

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden ``[s, b, h]`` -> (probs, routing map), both ``[s*b, E]``."""
        if self.expert_bias is not None and self.expert_bias.dtype != torch.float32:
            self.expert_bias.data = self.expert_bias.data.float()
        hidden = self.apply_input_jitter(hidden)
        logits = self.gating(hidden)
        if self.config.moe_router_force_load_balancing:
            logits = _RandomLogits.apply(logits, self.jitter_generator)
        return self.routing(logits)

    @torch.no_grad()
    def update_expert_bias(self, data_group: Any = None) -> None:
        """Move the expert bias one step toward balance from the tokens counted since the last
        update (summed over ``data_group``: the tensor, context and data-parallel ranks)."""
        if self.expert_bias is None:
            return
        counts = self.local_tokens_per_expert.clone()
        if group_size(data_group) > 1:
            torch.distributed.all_reduce(counts, group=data_group)
        self.expert_bias.copy_(
            routing.updated_expert_bias(
                counts, self.expert_bias, self.config.moe_router_bias_update_rate
            )
        )
        self.local_tokens_per_expert.zero_()


class _RandomLogits(torch.autograd.Function):
    """--moe-router-force-load-balancing: random normal logits forward, straight-through
    gradient (a benchmarking aid: balanced routing whatever the weights)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, generator: torch.Generator | None):
        noise = torch.randn(logits.shape, generator=generator, dtype=torch.float32)
        return noise.to(device=logits.device, dtype=logits.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        return grad, None
