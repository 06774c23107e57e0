"""The MoE MLP of a transformer layer, built from the model's config (gpt-moe does the work).

gpt-moe owns routing, dispatch and the experts; this module supplies what it cannot know:
the activation from the model config, the shared expert (our dense ``MLP`` at
--moe-shared-expert-intermediate-size), and the process groups the caller passes in.
"""

from __future__ import annotations

import torch
from gpt_moe.experts import activation_for
from gpt_moe.layer import MoEGroups, MoELayer
from gpt_moe.losses import AuxLosses

from gpt_models.mlp import MLP
from gpt_models.provider import Provider
from gpt_models.tp_shards import REPLICATED, mark_tensor_parallel_partial_grad, tag
from gpt_models.transformer_config import TransformerConfig


def build_moe_mlp(
    config: TransformerConfig,
    provider: Provider,
    layer_number: int,
    *,
    aux_losses: AuxLosses | None,
    groups: MoEGroups,
    device: torch.device | str | None = None,
) -> MoELayer:
    """``mlp`` of an MoE layer: router, local experts and the optional shared expert."""
    shared = None
    size = config.moe_shared_expert_intermediate_size
    if size is not None:
        shared = MLP(config.replace(ffn_hidden_size=size), provider, device=device)
    layer = MoELayer(
        config.moe,
        config.hidden_size,
        activation_for(config.activation, config.gated_linear_unit),
        gated=config.gated_linear_unit,
        layer_number=layer_number,
        aux_losses=aux_losses,
        groups=groups,
        shared_experts=shared,
        device=device,
        dtype=config.params_dtype,
        recompute=config.selective_recompute_modules,
    )
    # The router and the experts are not split over tensor-parallel ranks (experts are laid
    # out over the expert grid instead); each rank draws and keeps them whole.
    for param in layer.router.parameters():
        tag(param, REPLICATED)
    for param in layer.experts.parameters():
        tag(param, REPLICATED)
    partition = provider.partition
    if partition.size > 1 and partition.sequence_parallel:
        # Each tensor-parallel rank routes its own sequence shard: the router's gradient is
        # summed over the ranks (the original's ``sequence_parallel`` router weight).
        mark_tensor_parallel_partial_grad(layer.router.weight)
    return layer


def moe_aux_losses(config: TransformerConfig) -> AuxLosses | None:
    """The collector of router losses for a model with MoE layers (None without experts)."""
    if not config.is_moe:
        return None
    mtp = config.mtp_num_layers or 0
    num_moe = sum(config.moe_layer_pattern()) + mtp
    return AuxLosses(num_layers=config.num_layers + mtp, num_moe_layers=max(num_moe, 1))
