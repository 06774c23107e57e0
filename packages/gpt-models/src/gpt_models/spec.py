"""Layer specs: a small typed description of what each transformer layer is made of.

The model class never branches on architecture flags to pick submodules; it builds each
layer from its spec. Dense GPT layers are ``LayerSpec(mixer="attention", mlp="dense")``;
hybrid (Mamba) mixers, MoE MLPs and heterogeneous stacks are further spec values, not new
model classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpt_models.transformer_config import TransformerConfig

MIXERS = ("attention",)
MLPS = ("dense", "moe")


@dataclass(frozen=True)
class LayerSpec:
    """One transformer layer: its token mixer, its MLP, and whether it applies RoPE."""

    mixer: str = "attention"
    """attention (mamba comes with the hybrid models)."""
    mlp: str = "dense"
    """dense, or moe (routed experts from gpt-moe)."""
    apply_rope: bool = True
    """False on the layers --no-rope-freq marks."""

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise NotImplementedError(f"layer mixer {self.mixer!r} is not implemented yet")
        if self.mlp not in MLPS:
            raise NotImplementedError(f"layer MLP {self.mlp!r} is not implemented yet")


def gpt_block_spec(config: TransformerConfig) -> tuple[LayerSpec, ...]:
    """One spec per layer of the dense GPT model (all layers, before any pipeline split)."""
    moe = config.moe_layer_pattern()
    return tuple(
        LayerSpec(
            mlp="moe" if moe[i] else "dense",
            apply_rope=config.uses_rope and not config.rope_skipped(i),
        )
        for i in range(config.num_layers)
    )
