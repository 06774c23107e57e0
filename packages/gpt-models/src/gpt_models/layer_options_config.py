"""gpt-models' per-layer options: activation recompute, fused kernels, biases (the original's
"training" group flags that shape each layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class LayerOptionsConfig:
    """The original's "training" flags owned here."""

    GROUP: ClassVar[str] = "training"

    recompute_activations: bool = flag(
        False,
        "--recompute-activations",
        action="store_true",
        help="recompute activation to allow for training with larger models, sequences, and batch sizes.",
        status=EFFECTIVE,
        deprecated="--recompute-granularity",
    )
    recompute_granularity: str | None = flag(
        None,
        "--recompute-granularity",
        choices=("full", "selective"),
        help="Checkpoint activations to allow for training with larger models, sequences, and batch sizes. It is supported at two granularities 1) full: whole transformer layer is recomputed, 2) selective: submodules set in --recompute-modules are recomputed, default is core_attn.",
        status=EFFECTIVE,
    )
    distribute_saved_activations: bool = flag(
        False,
        "--distribute-saved-activations",
        action="store_true",
        help="If set, distribute recomputed activations across model parallel group.",
        status=NOT_IMPLEMENTED,
    )
    recompute_method: str | None = flag(
        None,
        "--recompute-method",
        choices=("uniform", "block"),
        help="1) uniform: uniformly divide the total number of Transformer layers and recompute the input activation of each divided chunk at specified granularity, 2) recompute the input activations of only a set number of individual Transformer layers per pipeline stage and do the rest without any recomputing at specified granularitydefault) do not apply activations recompute to any layers",
        status=EFFECTIVE,
    )
    recompute_num_layers: int | None = flag(
        None,
        "--recompute-num-layers",
        type=int,
        help="1) uniform: the number of Transformer layers in each uniformly divided recompute unit, 2) block: the number of individual Transformer layers to recompute within each pipeline stage.",
        status=EFFECTIVE,
    )
    recompute_modules: list[str] | None = flag(
        None,
        "--recompute-modules",
        nargs="*",
        help='The submodules to recompute. choices: "core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp", "moe", "shared_experts". default: ["core_attn"]."core_attn": recompute the core attention part of the transformer layer. "moe_act": recompute the MoE MLP activation function. "layernorm": recompute the input_layernorm and pre_mlp_layernorm. "mla_up_proj": recompute the MLA up projection and RoPE applying parts."mlp": recompute the dense MLP layer."moe": recompute the MoE layer."shared_experts": recompute the shared experts in the MoE layer."moe_act", "layernorm", and "mla_up_proj" use output-discarding checkpointing, "core_attn", "mlp", "moe", and "shared_experts" use normal checkpointing.',
        status=EFFECTIVE,
    )
    clone_scatter_output_in_embedding: bool = flag(
        True,
        "--no-clone-scatter-output-in-embedding",
        action="store_false",
        help="If not set, clone the output of the scatter in embedding layer to GC original tensor.",
        status=NOT_IMPLEMENTED,
    )
    use_cpu_initialization: bool | None = flag(
        None,
        "--use-cpu-initialization",
        action="store_true",
        help="If set, initialize weights on the CPU. This eliminates init differences based on tensor parallelism. (gpt-stack: weights are always drawn on the CPU, and a pipeline stage draws exactly the one-process model's weights for its layers, so every tensor, pipeline and virtual-stage layout starts from the same model; the original seeds stage p with seed + 100 * p instead.)",
        status=EFFECTIVE,
    )
    checkpoint_activations: bool = flag(
        False,
        "--checkpoint-activations",
        action="store_true",
        help="Checkpoint activation to allow for training with larger models, sequences, and batch sizes.",
        status=EFFECTIVE,
        deprecated="--recompute-granularity",
    )
    masked_softmax_fusion: bool = flag(
        True,
        "--no-masked-softmax-fusion",
        action="store_false",
        help="Disable fusion of query_key_value scaling, masking, and softmax.",
        status=EFFECTIVE,
    )
    bias_gelu_fusion: bool = flag(
        True,
        "--no-bias-gelu-fusion",
        action="store_false",
        help="Disable bias and gelu fusion.",
        status=EFFECTIVE,
    )
    bias_swiglu_fusion: bool = flag(
        True,
        "--no-bias-swiglu-fusion",
        action="store_false",
        help="Disable bias and swiglu fusion, the fusion is available only when using megatron-core.",
        status=EFFECTIVE,
    )
    use_fused_weighted_squared_relu: bool = flag(
        False,
        "--use-fused-weighted-squared-relu",
        action="store_true",
        help="Use fused weighted squared relu when using MoE.",
        status=NOT_IMPLEMENTED,
    )
    bias_dropout_fusion: bool = flag(
        True,
        "--no-bias-dropout-fusion",
        action="store_false",
        help="Disable bias and dropout fusion.",
        status=EFFECTIVE,
    )
    apply_rope_fusion: bool = flag(
        True,
        "--no-rope-fusion",
        action="store_false",
        help="Disable rope fusion, the fusion is available only when using megatron-core.",
        status=EFFECTIVE,
    )
    rope_type: str | None = flag(
        None,
        "--rope-type",
        choices=("rope", "yarn"),
        help="Type of rope to use. Note that MLA takes yarn by default, and common attention takes rope by default.",
        status=EFFECTIVE,
    )
    cross_entropy_loss_fusion: bool = flag(
        False,
        "--cross-entropy-loss-fusion",
        action="store_true",
        help="Enabled fusion of cross entropy loss calculation.",
        status=EFFECTIVE,
    )
    cross_entropy_fusion_impl: str = flag(
        "native",
        "--cross-entropy-fusion-impl",
        choices=("native", "te"),
        help="Implementation of cross entropy loss calculation.",
        status=EFFECTIVE,
    )
    use_flash_attn: bool = flag(
        False,
        "--use-flash-attn",
        action="store_true",
        help="use FlashAttention implementation of attention. https://arxiv.org/abs/2205.14135",
        status=EFFECTIVE,
    )
    add_bias_linear: bool = flag(
        True,
        "--disable-bias-linear",
        action="store_false",
        help="Disable bias in the linear layers",
        status=EFFECTIVE,
    )
    add_qkv_bias: bool = flag(
        False,
        "--add-qkv-bias",
        action="store_true",
        help="Enable bias only in the QKV linear layers",
        status=EFFECTIVE,
    )
    no_persist_layer_norm: bool = flag(
        False,
        "--no-persist-layer-norm",
        action="store_true",
        help="Disable using persistent fused layer norm kernel. This kernel supports only a set of hidden sizes. Please check persist_ln_hidden_sizes if your hidden size is supported.",
        status=EFFECTIVE,
    )
    deprecated_use_mcore_models: bool = flag(
        False,
        "--use-mcore-models",
        action="store_true",
        help="DEPRECATED. Use the implementation from megatron core.Now ignored and mcore models are the default, use --use-legacy-models to not use core models.",
        status=EFFECTIVE,
        reason="deprecated: maps to nothing (ignored)",
        deprecated="-",
    )
    use_legacy_models: bool = flag(
        False,
        "--use-legacy-models",
        action="store_true",
        help="Use the legacy Megatron models, not Megatron-Core models.",
        status=NOT_IMPLEMENTED,
    )
