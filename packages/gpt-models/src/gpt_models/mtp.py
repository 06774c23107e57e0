"""Multi-token prediction (DeepSeek-V3): D extra layers that each predict one token further.

Layer k takes the previous depth's hidden states (the decoder's output, final-normed, for
k = 1) and the embeddings of the input shifted k tokens left, normalises both (``hnorm``,
``enorm``), projects their concatenation ``[emb; hidden]`` back to h (``eh_proj``), runs one
transformer layer shaped like the decoder's last one and a final norm. The shared output layer
turns that into logits for the labels shifted k tokens left; the last k positions, which have no
such label, are masked out. Names are the original's: ``mtp.layers.{k-1}.{enorm, hnorm,
eh_proj, transformer_layer.*, final_layernorm}``.

The MTP losses join the backward pass like the router losses (attached to the main path's
hidden states, scaled by ``--mtp-loss-scaling-factor / D``) and are logged as ``mtp_{k} loss``
(each micro-batch's masked mean, averaged over micro-batches and data-parallel ranks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from gpt_moe.losses import AuxLossScaler, recomputing
from gpt_parallel.comm.basic import all_reduce_
from gpt_parallel.comm.groups import group_size
from torch import nn

from gpt_models.layer import TransformerLayer
from gpt_models.linear import Linear
from gpt_models.provider import Provider
from gpt_models.rotary import RotaryTables
from gpt_models.spec import LayerSpec
from gpt_models.transformer_config import TransformerConfig


def roll_left(tensor: torch.Tensor) -> torch.Tensor:
    """Shift the last dim one step left, the freed last position zero (the original's
    roll_tensor without context parallelism)."""
    rolled = torch.roll(tensor, shifts=-1, dims=-1)
    rolled[..., -1] = 0
    return rolled


@dataclass
class MTPLosses:
    """The MTP losses' backward scale and logged values (one slot per depth)."""

    num_layers: int
    scale: torch.Tensor = field(default_factory=lambda: torch.ones(()))
    values: torch.Tensor | None = None
    per_token_loss: bool = False

    def set_scale(self, scale: float | torch.Tensor) -> None:
        self.scale = torch.as_tensor(scale, dtype=torch.float32).reshape(()).detach().clone()

    def attach(self, activation: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and activation.requires_grad):
            return activation
        return AuxLossScaler.apply(activation, loss, self.scale.to(activation.device))

    def record(self, depth: int, value: torch.Tensor) -> None:
        if recomputing():
            return
        if self.values is None:
            self.values = torch.zeros(self.num_layers, device=value.device)
        self.values[depth] += value.detach().float()

    def report(
        self, num_microbatches: int, data_group: Any = None, device: Any = "cpu"
    ) -> dict[str, float]:
        """``mtp_{k} loss`` for each depth (averaged over ``data_group``), then zeroed."""
        if self.values is None:
            self.values = torch.zeros(self.num_layers, device=device)
        all_reduce_(self.values, data_group, "sum")
        self.values.div_(group_size(data_group) * num_microbatches)
        out = {f"mtp_{k + 1} loss": float(v) for k, v in enumerate(self.values.tolist())}
        self.values.zero_()
        return out


class MTPLayer(nn.Module):
    """One prediction depth."""

    def __init__(
        self,
        config: TransformerConfig,
        spec: LayerSpec,
        provider: Provider,
        layer_number: int,
        *,
        device: torch.device | str | None = None,
        aux_losses: Any = None,
        moe_groups: Any = None,
    ) -> None:
        super().__init__()
        h = config.hidden_size
        self.enorm = provider.norm(h, device)
        self.hnorm = provider.norm(h, device)
        self.eh_proj = Linear(2 * h, h, bias=False, device=device, dtype=config.params_dtype)
        self.transformer_layer = TransformerLayer(
            config,
            spec,
            provider,
            layer_number,
            device=device,
            aux_losses=aux_losses,
            moe_groups=moe_groups,
        )
        self.final_layernorm = provider.norm(h, device)

    def forward(
        self,
        hidden: torch.Tensor,
        shifted_embeddings: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: RotaryTables | None,
    ) -> torch.Tensor:
        combined = torch.cat((self.enorm(shifted_embeddings), self.hnorm(hidden)), dim=-1)
        projected, _ = self.eh_proj(combined)
        out = self.transformer_layer(projected, attention_mask, rotary)
        return self.final_layernorm(out)


class MTPBlock(nn.Module):
    """``layers.{k}`` for k < --mtp-num-layers, and the loss bookkeeping."""

    def __init__(
        self,
        config: TransformerConfig,
        spec: LayerSpec,
        provider: Provider,
        *,
        device: torch.device | str | None = None,
        aux_losses: Any = None,
        moe_groups: Any = None,
    ) -> None:
        super().__init__()
        depth = config.mtp_num_layers or 0
        self.loss_scale = config.mtp_loss_scaling_factor / max(depth, 1)
        self.losses = MTPLosses(num_layers=depth)
        self.layers = nn.ModuleList(
            MTPLayer(
                config,
                spec,
                provider,
                config.num_layers + k + 1,
                device=device,
                aux_losses=aux_losses,
                moe_groups=moe_groups,
            )
            for k in range(depth)
        )

    def forward(
        self,
        hidden: torch.Tensor,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None,
        labels: torch.Tensor,
        loss_mask: torch.Tensor | None,
        *,
        embed: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
        token_losses: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        attention_mask: torch.Tensor | None,
        rotary: RotaryTables | None,
    ) -> torch.Tensor:
        """The main path's ``hidden`` with every depth's loss attached to it.

        ``embed(ids, positions)`` is the model's embedding, ``token_losses(hidden, labels)``
        its output layer and per-token loss ``[b, s]``."""
        main = hidden
        labels = labels.clone()
        mask = torch.ones_like(labels, dtype=torch.float) if loss_mask is None else loss_mask
        mask = mask.float()
        for depth, layer in enumerate(self.layers):
            input_ids = roll_left(input_ids)
            if position_ids is not None:
                position_ids = roll_left(position_ids)
            hidden = layer(hidden, embed(input_ids, position_ids), attention_mask, rotary)
            labels = roll_left(labels)
            mask = roll_left(mask)
            num_tokens = mask.sum()
            loss = token_losses(hidden, labels) * mask
            if self.training and torch.is_grad_enabled():
                self.losses.record(depth, loss.sum() / num_tokens)
            scaled = self.loss_scale * loss
            if not self.losses.per_token_loss:
                scaled = scaled / num_tokens
            main = self.losses.attach(main, scaled)
        return main
