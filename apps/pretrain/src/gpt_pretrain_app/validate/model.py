"""Model shape: required sizes and the original's derived defaults (ffn size, kv channels, ...)."""

from __future__ import annotations

from .context import Resolution, require


def swiglu_ffn_hidden_size(hidden_size: int) -> int:
    """The original's default for --swiglu: 8h/3 rounded down to a multiple of 64."""
    return int((4 * hidden_size * 2 / 3) / 64) * 64


def resolve_model_shape(r: Resolution) -> None:
    a = r.args
    for flag_name, value in (
        ("--num-layers", a.num_layers),
        ("--hidden-size", a.hidden_size),
        ("--num-attention-heads", a.num_attention_heads),
        ("--max-position-embeddings", a.max_position_embeddings),
    ):
        require(value is not None, f"{flag_name} is required")
        require(value > 0, f"{flag_name} must be positive, got {value}")
    if a.encoder_num_layers is not None:
        require(
            a.encoder_num_layers == a.num_layers,
            "--encoder-num-layers and --num-layers disagree (GPT has one decoder stack)",
        )
    a.encoder_num_layers = a.num_layers
    if a.seq_length is not None:
        require(
            a.encoder_seq_length is None or a.encoder_seq_length == a.seq_length,
            "--seq-length and --encoder-seq-length disagree",
        )
        a.encoder_seq_length = a.seq_length
    else:
        require(a.encoder_seq_length is not None, "--seq-length is required")
        a.seq_length = a.encoder_seq_length
    require(a.seq_length > 0, f"--seq-length must be positive, got {a.seq_length}")
    if a.position_embedding_type == "learned_absolute":
        require(
            a.max_position_embeddings >= a.seq_length,
            f"--max-position-embeddings ({a.max_position_embeddings}) must be at least "
            f"--seq-length ({a.seq_length})",
        )
    if a.ffn_hidden_size is None:
        if a.swiglu:
            a.ffn_hidden_size = swiglu_ffn_hidden_size(a.hidden_size)
        else:
            a.ffn_hidden_size = 4 * a.hidden_size
    if a.kv_channels is None:
        require(
            a.hidden_size % a.num_attention_heads == 0,
            f"--hidden-size ({a.hidden_size}) must be divisible by --num-attention-heads "
            f"({a.num_attention_heads}) unless --kv-channels is given",
        )
        a.kv_channels = a.hidden_size // a.num_attention_heads
    if a.group_query_attention:
        require(a.num_query_groups >= 1, "--num-query-groups must be at least 1")
        require(
            a.num_attention_heads % a.num_query_groups == 0,
            f"--num-attention-heads ({a.num_attention_heads}) must be divisible by "
            f"--num-query-groups ({a.num_query_groups})",
        )
        require(
            a.num_query_groups % a.tensor_model_parallel_size == 0,
            f"--num-query-groups ({a.num_query_groups}) must be divisible by "
            f"--tensor-model-parallel-size ({a.tensor_model_parallel_size})",
        )
    else:
        a.num_query_groups = None
    require(
        a.num_attention_heads % a.tensor_model_parallel_size == 0,
        f"--num-attention-heads ({a.num_attention_heads}) must be divisible by "
        f"--tensor-model-parallel-size ({a.tensor_model_parallel_size})",
    )
    activations = [
        f
        for f, on in (
            ("--swiglu", a.swiglu),
            ("--squared-relu", a.squared_relu),
            ("--openai-gelu", a.openai_gelu),
        )
        if on
    ]
    require(len(activations) <= 1, f"{' and '.join(activations)} are mutually exclusive")
    require(
        not (a.qk_layernorm and a.qk_l2_norm),
        "--qk-layernorm and --qk-l2-norm are mutually exclusive",
    )
    require(
        0.0 <= a.hidden_dropout <= 1.0,
        f"--hidden-dropout must be in [0, 1], got {a.hidden_dropout}",
    )
    require(
        0.0 <= a.attention_dropout <= 1.0,
        f"--attention-dropout must be in [0, 1], got {a.attention_dropout}",
    )
    require(
        0.0 < a.rotary_percent <= 1.0, f"--rotary-percent must be in (0, 1], got {a.rotary_percent}"
    )


def resolve_model_features(r: Resolution) -> None:
    a = r.args
    if not a.add_bias_linear:
        a.bias_gelu_fusion = False
    else:
        a.add_qkv_bias = True
    if a.swiglu:
        a.bias_gelu_fusion = False
    else:
        a.bias_swiglu_fusion = False
    if a.position_embedding_type not in ("rope", "mrope"):
        a.apply_rope_fusion = False
    if a.position_embedding_type == "mrope":
        require(
            a.mrope_section is not None, "--position-embedding-type mrope needs --mrope-section"
        )
    if a.apply_query_key_layer_scaling:
        a.attention_softmax_in_fp32 = True
    if a.mtp_num_layers is not None:
        require(
            a.position_embedding_type in ("rope", "none"),
            "--mtp-num-layers needs --position-embedding-type rope or none",
        )
    if a.use_rope_scaling:
        require(
            a.position_embedding_type == "rope",
            "--use-rope-scaling needs --position-embedding-type rope",
        )
    if a.rotary_seq_len_interpolation_factor is not None:
        require(
            a.rotary_seq_len_interpolation_factor >= 1,
            "--rotary-seq-len-interpolation-factor must be at least 1",
        )
    if a.num_experts is not None and a.num_experts == 0:
        a.num_experts = None
    if a.num_experts is not None:
        require(a.spec is None, "--num-experts cannot be combined with --spec")
        if a.moe_ffn_hidden_size is None:
            a.moe_ffn_hidden_size = a.ffn_hidden_size
        require(
            1 <= a.moe_router_topk <= a.num_experts,
            f"--moe-router-topk ({a.moe_router_topk}) must be between 1 and --num-experts ({a.num_experts})",
        )


def check_recompute(r: Resolution) -> None:
    a = r.args
    if a.recompute_granularity == "selective":
        require(
            a.recompute_method is None,
            "--recompute-method applies to --recompute-granularity full only",
        )
    if a.recompute_method is not None:
        require(
            a.recompute_granularity == "full",
            "--recompute-method needs --recompute-granularity full",
        )
    if a.recompute_granularity == "full":
        require(
            a.recompute_method is not None,
            "--recompute-granularity full needs --recompute-method uniform or block",
        )
        if a.recompute_num_layers is None:
            a.recompute_num_layers = 1
        require(a.recompute_num_layers >= 1, "--recompute-num-layers must be at least 1")
        if a.recompute_method == "block":
            per_stage = a.num_layers // a.pipeline_model_parallel_size
            require(
                a.recompute_num_layers <= per_stage,
                f"--recompute-num-layers ({a.recompute_num_layers}) exceeds the layers per pipeline "
                f"stage ({per_stage})",
            )
    elif a.recompute_num_layers is not None:
        require(False, "--recompute-num-layers needs --recompute-granularity full")
