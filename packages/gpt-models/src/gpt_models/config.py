"""Flags owned by gpt-models: architecture, attention, positions, fusions, recompute, init.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NEEDS_GPU,
    NO_EFFECT,
    NOT_IMPLEMENTED,
    flag,
    parse_layer_pattern,
)


@dataclass(frozen=True, kw_only=True)
class ArchitectureConfig:
    """The original's "network size" flags owned here."""

    GROUP: ClassVar[str] = "network size"

    num_layers: int | None = flag(
        None, "--num-layers", type=int, help="Number of transformer layers.", status=EFFECTIVE
    )
    encoder_num_layers: int | None = flag(
        None,
        "--encoder-num-layers",
        type=int,
        help="Number of encoder transformer layers.",
        status=NOT_IMPLEMENTED,
    )
    decoder_num_layers: int | None = flag(
        None,
        "--decoder-num-layers",
        type=int,
        help="Number of decoder transformer layers.",
        status=NO_EFFECT,
        reason="T5 encoder-decoder models only",
    )
    hidden_size: int | None = flag(
        None, "--hidden-size", type=int, help="Tansformer hidden size.", status=EFFECTIVE
    )
    ffn_hidden_size: int | None = flag(
        None,
        "--ffn-hidden-size",
        type=int,
        help="Transformer Feed-Forward Network hidden size. This is set to 4*hidden-size if not provided",
        status=EFFECTIVE,
    )
    num_attention_heads: int | None = flag(
        None,
        "--num-attention-heads",
        type=int,
        help="Number of transformer attention heads.",
        status=EFFECTIVE,
    )
    attention_backend: str = flag(
        "auto",
        "--attention-backend",
        choices=("flash", "fused", "unfused", "local", "auto"),
        help="Attention backend to use (flash,fused,unfused,local,auto). Defaults to auto",
        status=EFFECTIVE,
    )
    kv_channels: int | None = flag(
        None,
        "--kv-channels",
        type=int,
        help="Projection weights dimension in multi-head attention. This is set to args.hidden_size // args.num_attention_heads if not provided.",
        status=EFFECTIVE,
    )
    group_query_attention: bool = flag(
        False,
        "--group-query-attention",
        action="store_true",
        help="Use group-query attention.",
        status=EFFECTIVE,
    )
    num_query_groups: int = flag(1, "--num-query-groups", type=int, status=EFFECTIVE)
    max_position_embeddings: int | None = flag(
        None,
        "--max-position-embeddings",
        type=int,
        help="Maximum number of position embeddings to use. This is the size of position embedding.",
        status=EFFECTIVE,
    )
    position_embedding_type: str = flag(
        "learned_absolute",
        "--position-embedding-type",
        choices=("learned_absolute", "rope", "mrope", "relative", "none"),
        help="Position embedding type.",
        status=EFFECTIVE,
    )
    relative_attention_num_buckets: int = flag(
        32,
        "--relative-attention-num-buckets",
        type=int,
        help="Number of buckets for relative position embeddings.",
        status=NOT_IMPLEMENTED,
    )
    relative_attention_max_distance: int = flag(
        128,
        "--relative-attention-max-distance",
        type=int,
        help="Maximum distance for relative position embeddings calculation.",
        status=NOT_IMPLEMENTED,
    )
    use_rotary_position_embeddings: bool = flag(
        False,
        "--use-rotary-position-embeddings",
        action="store_true",
        help="Use rotary positional embeddings or not. Deprecated: use --position-embedding-type",
        status=EFFECTIVE,
        deprecated="--position-embedding-type",
    )
    rotary_base: int = flag(
        10000,
        "--rotary-base",
        type=int,
        help="Base to use for rotary positional embeddings, default 10000",
        status=EFFECTIVE,
    )
    rotary_percent: float = flag(
        1.0,
        "--rotary-percent",
        type=float,
        help="Percent of rotary dimension to use, default 100%%",
        status=EFFECTIVE,
    )
    rotary_interleaved: bool = flag(
        False,
        "--rotary-interleaved",
        action="store_true",
        help="Use interleaved rotary embedding.",
        status=EFFECTIVE,
    )
    rotary_seq_len_interpolation_factor: int | None = flag(
        None,
        "--rotary-seq-len-interpolation-factor",
        type=int,
        help="Sequence length interpolation factor for rotary embeddings.",
        status=EFFECTIVE,
    )
    use_rope_scaling: bool = flag(
        False,
        "--use-rope-scaling",
        action="store_true",
        help="Apply rope scaling as used in llama3.x",
        status=EFFECTIVE,
    )
    rope_scaling_factor: float = flag(
        8.0,
        "--rope-scaling-factor",
        type=float,
        help="Rope scaling factor in llama3.x models",
        status=EFFECTIVE,
    )
    no_rope_freq: int | list[int] | None = flag(
        None,
        "--no-rope-freq",
        type=parse_layer_pattern,
        help='Controls which layers to skip performing Rotary Position Embedding. Accepts either: - An integer N: Represents a 1:N ratio, meaning RoPE is skipped every N-1 layers. - A string containing a Python list expression that defines a custom pattern, e.g.: "([0]*3+[1]*1)*3" evaluates to [0,0,0,1,0,0,0,1,0,0,0,1] where 1 indicates no-rope layer. This patten is equivalent to --no-rope- freq=4.By default this is disabled and set to None, indicating RoPE will be performedon every layer.',
        status=EFFECTIVE,
    )
    add_position_embedding: bool = flag(
        True,
        "--no-position-embedding",
        action="store_false",
        help="Disable position embedding. Deprecated: use --position-embedding-type",
        status=EFFECTIVE,
        deprecated="--position-embedding-type",
    )
    mrope_section: list[int] | None = flag(
        None,
        "--mrope-section",
        type=int,
        nargs="+",
        help="Multimodal rope section is for channel dimension, empty by default.",
        status=NOT_IMPLEMENTED,
    )
    normalization: str = flag(
        "LayerNorm",
        "--normalization",
        choices=("LayerNorm", "RMSNorm"),
        help="Which normalization technique to use.",
        status=EFFECTIVE,
    )
    norm_epsilon: float = flag(
        1e-05,
        "--norm-epsilon",
        type=float,
        help="Epsilon for layer norm and RMS norm.",
        status=EFFECTIVE,
    )
    apply_layernorm_1p: bool = flag(
        False,
        "--apply-layernorm-1p",
        action="store_true",
        help="Adjust LayerNorm weights such that they are centered around zero. This improves numerical stability.",
        status=EFFECTIVE,
    )
    apply_residual_connection_post_layernorm: bool = flag(
        False,
        "--apply-residual-connection-post-layernorm",
        action="store_true",
        help="If set, use original BERT residula connection ordering.",
        status=EFFECTIVE,
    )
    openai_gelu: bool = flag(
        False,
        "--openai-gelu",
        action="store_true",
        help="Use OpenAIs GeLU implementation. This optionshould not be used unless for backward compatibilityreasons.",
        status=EFFECTIVE,
    )
    squared_relu: bool = flag(
        False,
        "--squared-relu",
        action="store_true",
        help="Use squared relu activation instead of default gelu",
        status=EFFECTIVE,
    )
    swiglu: bool = flag(
        False,
        "--swiglu",
        action="store_true",
        help="Use gated linear units and SiLU activation instead of default gelu",
        status=EFFECTIVE,
    )
    untie_embeddings_and_output_weights: bool = flag(
        False,
        "--untie-embeddings-and-output-weights",
        action="store_true",
        help="Untie embeddings and output weights.",
        status=EFFECTIVE,
    )
    multi_latent_attention: bool = flag(
        False,
        "--multi-latent-attention",
        action="store_true",
        help="Use multi-latent attention for model.",
        status=NOT_IMPLEMENTED,
    )
    mtp_num_layers: int | None = flag(
        None,
        "--mtp-num-layers",
        type=int,
        help="Number of Multi-Token Prediction (MTP) Layers.MTP extends the prediction scope to multiple future tokens at each position.This MTP implementation sequentially predict additional tokens by using D sequential modules to predict D additional tokens.",
        status=NOT_IMPLEMENTED,
    )
    mtp_loss_scaling_factor: float = flag(
        0.1,
        "--mtp-loss-scaling-factor",
        type=float,
        help="Scaling factor of Multi-Token Prediction (MTP) loss. We compute the average of the MTP losses across all depths, and multiply it the scaling factor to obtain the overall MTP loss, which serves as an additional training objective.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class DropoutConfig:
    """The original's "regularization" flags owned here."""

    GROUP: ClassVar[str] = "regularization"

    attention_dropout: float = flag(
        0.1,
        "--attention-dropout",
        type=float,
        help="Post attention dropout probability.",
        status=EFFECTIVE,
    )
    hidden_dropout: float = flag(
        0.1,
        "--hidden-dropout",
        type=float,
        help="Dropout probability for hidden state transformer.",
        status=EFFECTIVE,
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
        help="If set, initialize weights on the CPU. This eliminates init differences based on tensor parallelism.",
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


@dataclass(frozen=True, kw_only=True)
class InitConfig:
    """The original's "initialization" flags owned here."""

    GROUP: ClassVar[str] = "initialization"

    init_method_std: float = flag(
        0.02,
        "--init-method-std",
        type=float,
        help="Standard deviation of the zero mean normal distribution used for weight initialization.",
        status=EFFECTIVE,
    )
    embedding_init_method_std: float | None = flag(
        None,
        "--embedding-init-method-std",
        type=float,
        help="Standard deviation of the zero mean normal distribution used for embedding weight initialization. If unset, embeddings will be initialized the same way as other weights. Setting this to a value around 1.0 may avoid loss spikes in training. Setting this to any value will also skip applying weight decay on embedding weights to avoid shrinkage towards zero. See https://arxiv.org/abs/2312.16903 for more details.",
        status=EFFECTIVE,
    )
    init_method_xavier_uniform: bool = flag(
        False,
        "--init-method-xavier-uniform",
        action="store_true",
        help="Enable Xavier uniform parameter initialization",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class NumericsConfig:
    """The original's "mixed precision" flags owned here."""

    GROUP: ClassVar[str] = "mixed precision"

    fp32_residual_connection: bool = flag(
        False,
        "--fp32-residual-connection",
        action="store_true",
        help="Move residual connections to fp32.",
        status=EFFECTIVE,
    )
    apply_query_key_layer_scaling: bool = flag(
        False,
        "--apply-query-key-layer-scaling",
        action="store_true",
        help="Scale Q * K^T by 1 / layer-number. Useful for fp16 training. Also sets `attention_softmax_in_fp32` to True.",
        status=EFFECTIVE,
    )
    attention_softmax_in_fp32: bool = flag(
        False,
        "--attention-softmax-in-fp32",
        action="store_true",
        help="Run attention masking and softmax in fp32.",
        status=EFFECTIVE,
    )
    fp16_lm_cross_entropy: bool = flag(
        False,
        "--fp16-lm-cross-entropy",
        action="store_true",
        help="Move the cross entropy unreduced loss calculationfor lm head to fp16.",
        status=EFFECTIVE,
    )
    disable_bf16_reduced_precision_matmul: bool = flag(
        False,
        "--disable-bf16-reduced-precision-matmul",
        action="store_true",
        help="If True, sets torch.backends.cuda.matmul.allow_bf16_re duced_precision_reduction=False to prevent matmul from using reduced precision accumulation when using BF16.",
        status=NEEDS_GPU,
        reason="cuBLAS reduced-precision bf16 reductions",
    )


@dataclass(frozen=True, kw_only=True)
class QKNormConfig:
    """The original's "vision" flags owned here."""

    GROUP: ClassVar[str] = "vision"

    qk_layernorm: bool = flag(
        False,
        "--qk-layernorm",
        action="store_true",
        help="Whether to layer normalize the q and k attention embeddings.",
        status=EFFECTIVE,
    )
    qk_l2_norm: bool = flag(
        False,
        "--qk-l2-norm",
        action="store_true",
        help="Use llama 4 qk l2 norm",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class MLAConfig:
    """The original's "mla" flags owned here."""

    GROUP: ClassVar[str] = "mla"

    q_lora_rank: int | None = flag(
        None,
        "--q-lora-rank",
        type=int,
        help="Rank of Query tensor's low rank representation.",
        status=NOT_IMPLEMENTED,
    )
    kv_lora_rank: int = flag(
        32,
        "--kv-lora-rank",
        type=int,
        help="Rank of Key and Value tensors' low rank representation.",
        status=NOT_IMPLEMENTED,
    )
    qk_head_dim: int = flag(
        128,
        "--qk-head-dim",
        type=int,
        help="Dimension of the head in the QK projection. q_head_dim = qk_head_dim + qk_pos_emb_head_dim",
        status=NOT_IMPLEMENTED,
    )
    qk_pos_emb_head_dim: int = flag(
        64,
        "--qk-pos-emb-head-dim",
        type=int,
        help="Dimension of the position embedding in the QK projection.",
        status=NOT_IMPLEMENTED,
    )
    v_head_dim: int = flag(
        128,
        "--v-head-dim",
        type=int,
        help="Dimension of the head in the V projection.",
        status=NOT_IMPLEMENTED,
    )
    rotary_scaling_factor: float = flag(
        1.0,
        "--rotary-scaling-factor",
        type=float,
        help="Rotary scaling factor for the rotary embeddings.",
        status=EFFECTIVE,
    )
    mscale: float = flag(
        1.0,
        "--mscale",
        type=float,
        help="Mscale for YaRN RoPE in multi-latent attention.",
        status=EFFECTIVE,
    )
    mscale_all_dim: float = flag(
        0.0,
        "--mscale-all-dim",
        type=float,
        help="Mscale all dimensions for YaRN RoPE in multi-latent attention.",
        status=EFFECTIVE,
    )
    cache_mla_latents: bool = flag(
        False,
        "--cache-mla-latents",
        action="store_true",
        help="If set caches the mla down projected latents with mla flash decode.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class HeterogeneousConfig:
    """The original's "heterogeneous architecture" flags owned here."""

    GROUP: ClassVar[str] = "heterogeneous architecture"

    heterogeneous_layers_config_path: str | None = flag(
        None,
        "--heterogeneous-layers-config-path",
        help="Path to json file containing heterogeneous model configuration. Use the format of the HuggingFace config files in llama nemotron models, e.g. https://huggingface.co/nvidia/Llama-3_3-Nemotron- Super-49B-v1/resolve/main/config.json.",
        status=NOT_IMPLEMENTED,
    )
    heterogeneous_layers_config_encoded_json: str | None = flag(
        None,
        "--heterogeneous-layers-config-encoded-json",
        help="This is encoded json string of the heterogeneous model configuration. Used to keep the content of the heterogeneous model specification in args when the model is loaded from a checkpoint. Use the format of the HuggingFace config files in llama nemotron models, e.g. https://huggingface.co/nvidia/Llama-3_3-Nemotron- Super-49B-v1/resolve/main/config.json.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class TransformerImplConfig:
    """The original's "Transformer-Engine" flags owned here."""

    GROUP: ClassVar[str] = "Transformer-Engine"

    transformer_impl: str = flag(
        "transformer_engine",
        "--transformer-impl",
        choices=("local", "transformer_engine"),
        help="Which Transformer implementation to use.",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class HybridConfig:
    """The original's "experimental" flags owned here."""

    GROUP: ClassVar[str] = "experimental"

    spec: list[str] | None = flag(
        None,
        "--spec",
        nargs="*",
        help="Specify the <module_location function_name> pair that returns a spec to customize a model, transformer block, or transformer layer, depending on the use case.To use local spec specify local as the argument.For more details, see the model class, `transformer_block.py`, or `transformer_layer.py`",
        status=NOT_IMPLEMENTED,
    )
    hybrid_attention_ratio: float = flag(
        0.0,
        "--hybrid-attention-ratio",
        type=float,
        help="Ratio of attention layers to total layers, in the range [0.0, 1.0].",
        status=NOT_IMPLEMENTED,
    )
    hybrid_mlp_ratio: float = flag(
        0.0,
        "--hybrid-mlp-ratio",
        type=float,
        help="Ratio of mlp layers to total layers, in the range [0.0, 1.0].",
        status=NOT_IMPLEMENTED,
    )
    hybrid_override_pattern: str | None = flag(
        None,
        "--hybrid-override-pattern",
        help="Force a specific hybrid layer pattern. The valueshould be a string of characters chosen fromcore.ssm.mamba_hybrid_layer_allocation.Symbols.If a value greater than 0.0 is supplied to any of the hybrid ratio arguments, then the number of each typeof layer in the override pattern must match number inthe overidden pattern",
        status=NOT_IMPLEMENTED,
    )
    is_hybrid_model: bool = flag(
        False,
        "--is-hybrid-model",
        action="store_true",
        help="Indicates whether the model is a hybrid model.",
        status=NOT_IMPLEMENTED,
    )
