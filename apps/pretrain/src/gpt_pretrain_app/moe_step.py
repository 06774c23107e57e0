"""What a training step does for MoE and MTP models besides the dense step (the original's
hooks).

- before each micro-batch's backward: the router losses' backward scale (the loss scale over
  the micro-batches, or the loss scale alone with --calculate-per-token-loss), as the
  original's forward_step sets ``MoEAuxLossAutoScaler``;
- after the last backward: the aux-loss-free expert-bias update, with token counts summed
  over the tensor x data x context-parallel ranks (the original's finalize_model_grads);
- the logged values (``load_balancing_loss``, ``seq_load_balancing_loss``, ``z_loss``),
  reduced over pipeline stages and averaged over data-parallel ranks (track_moe_metrics);
- the same backward scale for the multi-token-prediction losses, and their ``mtp_{k} loss``
  log values (the original's MTPLossAutoScaler and MTPLossLoggingHelper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gpt_models import GPTModel
from gpt_moe.layer import MoEGroups
from gpt_moe.losses import LOAD_BALANCING, SEQ_LOAD_BALANCING, Z_LOSS, AuxLosses
from gpt_moe.router import load_balancing_types
from gpt_parallel.parallel_state import ParallelState


def moe_groups(state: ParallelState) -> MoEGroups:
    """The MoE layers' groups: tokens are exchanged over the expert-parallel group (times
    expert-tensor-parallel), router losses count tokens over tensor x context ranks."""
    return MoEGroups(expert=state.group("etp-ep"), tp_cp=state.group("tp-cp"))


def tracked_names(model_config: Any) -> tuple[str, ...]:
    """The logged loss names the original tracks for these flags, in its order."""
    types = load_balancing_types(model_config.moe)
    names = []
    if "aux_loss" in types:
        names.append(LOAD_BALANCING)
    if "seq_aux_loss" in types:
        names.append(SEQ_LOAD_BALANCING)
    if model_config.moe_z_loss_coeff is not None:
        names.append(Z_LOSS)
    return tuple(names)


@dataclass
class MoEStep:
    """The MoE and MTP hooks of one rank's model chunks."""

    aux_losses: list[AuxLosses]
    mtp_losses: list[Any]
    routers: list[torch.nn.Module]
    names: tuple[str, ...]
    per_token_loss: bool
    bias_group: Any = None
    pipeline_group: Any = None
    data_group: Any = None

    @classmethod
    def build(
        cls, model: torch.nn.Module, model_config: Any, state: ParallelState, per_token: bool
    ) -> MoEStep | None:
        """None for a model with neither (``model``: the chunk or chunks, wrapped or not)."""
        if not model_config.is_moe and not model_config.mtp_num_layers:
            return None
        chunks = [m for m in model.modules() if isinstance(m, GPTModel)]
        aux = [c.aux_losses for c in chunks if getattr(c, "aux_losses", None) is not None]
        mtp = [c.mtp.losses for c in chunks if getattr(c, "mtp", None) is not None]
        routers = [r for c in chunks for r in c.routers()]
        return cls(
            aux_losses=aux,
            mtp_losses=mtp,
            routers=routers,
            names=tracked_names(model_config) if model_config.is_moe else (),
            per_token_loss=per_token,
            bias_group=state.group("tp-dp-cp"),
            pipeline_group=state.group("pp"),
            data_group=state.group("dp-cp"),
        )

    def before_microbatch(self, optimizer: Any, num_microbatches: int) -> None:
        one = torch.ones(())
        scale = optimizer.scale_loss(one) if optimizer is not None else one
        if not self.per_token_loss:
            scale = scale / num_microbatches
        for losses in [*self.aux_losses, *self.mtp_losses]:
            losses.per_token_loss = self.per_token_loss
            losses.set_scale(scale)

    def after_backward(self) -> None:
        for router in self.routers:
            router.update_expert_bias(self.bias_group)

    def losses(self, num_microbatches: int, device: torch.device) -> dict[str, float]:
        """This iteration's logged router losses (then the tracker is zeroed)."""
        out: dict[str, float] = {}
        for aux in self.aux_losses:
            aux.ensure(self.names, device)
            aux.reduce(self.pipeline_group, self.data_group)
            for name, value in aux.report(num_microbatches).items():
                out[name] = out.get(name, 0.0) + value
            aux.clear()
        for mtp in self.mtp_losses:
            out.update(mtp.report(num_microbatches, self.data_group, device))
        return out
