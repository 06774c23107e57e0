"""The compiled regions of the model: a whole transformer layer, and the loss head.

A region is one ``Compiled`` function, made by the provider and shared by every module it
builds that runs in it. The layer
region takes the layer as an argument, so all layers (same code, same shapes) share one
compiled graph: a model compiles one layer, not ``num_layers``. The fused kernels the layer
calls are traced into the region; the unfused ones are kept out of it (``eager``), so a
``--no-*-fusion`` flag still runs its plain reference as eager PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import torch

from gpt_models.kernels.compiled import CompileChoice, Compiled

F = TypeVar("F", bound=Callable[..., Any])


class LayerLike(Protocol):
    """What the layer region calls: the layer's uncompiled forward."""

    def forward_impl(self, *args: Any) -> torch.Tensor: ...


class LossHeadLike(Protocol):
    """What the loss region calls: output layer and cross-entropy."""

    def logits_and_loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...


def _run_layer(layer: LayerLike, *args: Any) -> torch.Tensor:
    return layer.forward_impl(*args)


def _run_loss_head(model: LossHeadLike, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return model.logits_and_loss(hidden, labels)


def layer_region(mode: CompileChoice) -> Compiled:
    """The region a transformer layer runs in (one per provider, shared by its layers)."""
    return Compiled(_run_layer, "transformer_layer", mode=mode)


def loss_region(mode: CompileChoice) -> Compiled:
    """The region of the output layer and the loss (--cross-entropy-loss-fusion)."""
    return Compiled(_run_loss_head, "output_layer_cross_entropy", mode=mode)


def eager(fn: F) -> F:
    """``fn`` run eagerly even when called inside a compiled region (a plain reference path)."""
    return torch.compiler.disable(fn, recursive=True)
