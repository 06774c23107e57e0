"""The one place that decides which implementation each kernel and building block uses.

Layers never read fusion flags or environment switches: they ask the provider for a linear
layer, a norm, a core attention module, a fused function or the compiled region they run in.
``LocalProvider`` is the pure PyTorch backend; a Transformer Engine or tensor-parallel provider
can replace single methods without touching the model code.

Fusion flags and compilation: a layer with any fused kernel on (the original's defaults) runs
as one compiled region (``kernels.regions``), its fused kernels traced into it; a kernel whose
``--no-*-fusion`` flag is given runs its plain reference eagerly inside that region; a layer
with no fusion at all runs eagerly. ``--cross-entropy-loss-fusion`` compiles the output layer
and the loss as a second region. ``kernels.compiled.set_compile_mode("off")`` (or
``GPT_STACK_COMPILE=off``) runs every region and kernel eagerly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gpt_models.kernels import activations
from gpt_models.kernels.attention import DotProductAttention, SDPAttention
from gpt_models.kernels.bias_dropout_add import (
    bias_dropout_add_fused,
    bias_dropout_add_reference,
)
from gpt_models.kernels.compiled import Compiled
from gpt_models.kernels.cross_entropy import (
    cross_entropy_fused,
    cross_entropy_inplace,
)
from gpt_models.kernels.regions import LAYER_REGION, LOSS_REGION, eager
from gpt_models.kernels.rope import apply_rope_fused, apply_rope_reference
from gpt_models.kernels.softmax import (
    scale_mask_softmax_fused,
    scale_mask_softmax_reference,
)
from gpt_models.linear import Linear
from gpt_models.norms import L2Norm, build_norm
from gpt_models.transformer_config import TransformerConfig

BiasActivation = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class LocalProvider:
    """Pure-PyTorch kernels; the fusion switches pick compiled or plain variants."""

    def __init__(self, config: TransformerConfig) -> None:
        self.config = config

    # ----------------------------------------------------------------- building blocks
    def linear(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        skip_bias_add: bool,
        parallel_mode: str | None = None,
        device: torch.device | str | None = None,
    ) -> nn.Module:
        """A projection; ``parallel_mode`` ('column' or 'row') is what a TP provider splits on."""
        del parallel_mode  # single device: nothing is split
        return Linear(
            in_features,
            out_features,
            bias=bias,
            skip_bias_add=skip_bias_add,
            device=device,
            dtype=self.config.params_dtype,
        )

    def norm(self, hidden_size: int, device: torch.device | str | None = None) -> nn.Module:
        """The model's norm (--normalization, --norm-epsilon, --apply-layernorm-1p)."""
        c = self.config
        return build_norm(
            c.normalization,
            hidden_size,
            c.norm_epsilon,
            c.apply_layernorm_1p,
            device=device,
            dtype=c.params_dtype,
        )

    def qk_norm(self, head_dim: int, device: torch.device | str | None = None) -> nn.Module | None:
        """Per-head norm of queries and keys, or None."""
        if self.config.qk_l2_norm:
            return L2Norm(head_dim, self.config.norm_epsilon)
        if self.config.qk_layernorm:
            return self.norm(head_dim, device)
        return None

    def core_attention(self, layer_number: int) -> nn.Module:
        """The attention kernel for --attention-backend."""
        c = self.config
        assert c.kv_channels is not None
        if c.attention_backend in ("unfused", "local"):
            return DotProductAttention(
                kv_channels=c.kv_channels,
                layer_number=layer_number,
                attention_dropout=c.attention_dropout,
                apply_query_key_layer_scaling=c.apply_query_key_layer_scaling,
                softmax_in_fp32=c.attention_softmax_in_fp32,
                softmax=self.masked_softmax(),
            )
        return SDPAttention(
            kv_channels=c.kv_channels,
            attention_dropout=c.attention_dropout,
            prefer_flash_attn=c.attention_backend == "flash",
        )

    # ------------------------------------------------------------------ compiled regions
    def layer_fusions(self) -> tuple[str, ...]:
        """The fused kernels a transformer layer uses (empty: the layer runs eagerly)."""
        c = self.config
        on = {
            "bias_activation": c.bias_activation_fusion,
            "bias_dropout_add": c.bias_dropout_fusion,
            "rope": c.uses_rope and c.apply_rope_fusion,
            "masked_softmax": c.attention_backend in ("unfused", "local")
            and c.masked_softmax_fusion,
        }
        return tuple(name for name, fused in on.items() if fused)

    def layer_region(self) -> Compiled | None:
        """The compiled region each transformer layer runs in, or None to run it eagerly."""
        return LAYER_REGION if self.layer_fusions() else None

    def loss_region(self) -> Compiled | None:
        """The compiled region of the output layer and loss (--cross-entropy-loss-fusion)."""
        return LOSS_REGION if self.config.cross_entropy_loss_fusion else None

    def _plain(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """An unfused kernel: eager even inside the layer's compiled region."""
        return eager(fn) if self.layer_region() is not None else fn

    # ---------------------------------------------------------------------- functions
    def bias_activation(self) -> BiasActivation:
        """fc1 output and its (unadded) bias -> activation output, as the original's MLP."""
        c = self.config
        if c.bias_activation_fusion:
            if c.swiglu:
                return activations.bias_swiglu_fused
            return activations.bias_gelu_fused
        act = activations.swiglu if c.swiglu else activations.ACTIVATIONS[c.activation]

        def plain(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            return act(x if bias is None else x + bias)

        return self._plain(plain)

    def bias_dropout_add(self) -> Callable[..., torch.Tensor]:
        """residual + dropout(x + bias)."""
        if self.config.bias_dropout_fusion:
            return bias_dropout_add_fused
        return self._plain(bias_dropout_add_reference)

    def masked_softmax(self) -> Callable[..., torch.Tensor]:
        """Scale, mask and softmax of attention scores."""
        if self.config.masked_softmax_fusion:
            return scale_mask_softmax_fused
        return self._plain(scale_mask_softmax_reference)

    def apply_rope(self) -> Callable[..., torch.Tensor]:
        """Rotate queries and keys."""
        if self.config.apply_rope_fusion:
            return apply_rope_fused
        return self._plain(apply_rope_reference)

    def cross_entropy(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Per-token loss over the padded vocabulary. Like the original's, the unfused loss
        overwrites the logits it is given (the model's own temporary) to save their copy."""
        if self.config.cross_entropy_loss_fusion:
            return cross_entropy_fused
        return cross_entropy_inplace


def provider_for(config: TransformerConfig) -> LocalProvider:
    """The provider for --transformer-impl; Transformer Engine kernels are not wired in yet,
    so both choices use the local kernels (the state dict can still be exported with TE names)."""
    return LocalProvider(config)
