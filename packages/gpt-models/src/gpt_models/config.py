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

from gpt_models.layer_options_config import LayerOptionsConfig

__all__ = [
    "ArchitectureConfig",
    "DropoutConfig",
    "HeterogeneousConfig",
    "HybridConfig",
    "InitConfig",
    "LayerOptionsConfig",
    "MLAConfig",
    "NumericsConfig",
    "QKNormConfig",
    "TransformerImplConfig",
]


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
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
    )
    mtp_loss_scaling_factor: float = flag(
        0.1,
        "--mtp-loss-scaling-factor",
        type=float,
        help="Scaling factor of Multi-Token Prediction (MTP) loss. We compute the average of the MTP losses across all depths, and multiply it the scaling factor to obtain the overall MTP loss, which serves as an additional training objective.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_golden.py",
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
