"""Model shape: required sizes and the original's derived defaults (ffn size, kv channels, ...).

The shape rules themselves belong to gpt-models (``gpt_models.model_rules``, also applied by
TransformerConfig); this module applies them to the flags and adds the rules that involve other
packages' flags (sequence length, tensor-parallel size, MoE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpt_flags.flagspec import from_namespace
from gpt_models import model_rules
from gpt_models.config import (
    ArchitectureConfig,
    DropoutConfig,
    LayerOptionsConfig,
    NumericsConfig,
    QKNormConfig,
)
from gpt_moe import rules as moe_rules
from gpt_moe.config import MoEConfig

from ..errors import ArgsError
from .context import Resolution, require


def _rule(rule: Callable[..., Any], *configs: Any) -> Any:
    """Apply a gpt-models rule; its one-line ValueError becomes the app's ArgsError."""
    try:
        return rule(*configs)
    except ValueError as err:
        raise ArgsError(str(err)) from None


def resolve_model_shape(r: Resolution) -> None:
    a = r.args
    arch = _rule(model_rules.resolve_architecture, from_namespace(ArchitectureConfig, a))
    a.ffn_hidden_size = arch.ffn_hidden_size
    a.kv_channels = arch.kv_channels
    a.num_query_groups = arch.num_query_groups
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
    if a.num_query_groups is not None:
        require(
            a.num_query_groups % a.tensor_model_parallel_size == 0,
            f"--num-query-groups ({a.num_query_groups}) must be divisible by "
            f"--tensor-model-parallel-size ({a.tensor_model_parallel_size})",
        )
    require(
        a.num_attention_heads % a.tensor_model_parallel_size == 0,
        f"--num-attention-heads ({a.num_attention_heads}) must be divisible by "
        f"--tensor-model-parallel-size ({a.tensor_model_parallel_size})",
    )
    tp = a.tensor_model_parallel_size
    require(
        a.ffn_hidden_size % tp == 0,
        f"--ffn-hidden-size ({a.ffn_hidden_size}) must be divisible by "
        f"--tensor-model-parallel-size ({tp})",
    )
    if a.sequence_parallel:
        require(
            a.seq_length % tp == 0,
            f"--seq-length ({a.seq_length}) must be divisible by --tensor-model-parallel-size "
            f"({tp}) with --sequence-parallel",
        )
    _rule(model_rules.check_qk_norm, from_namespace(QKNormConfig, a))
    _rule(model_rules.check_dropout, from_namespace(DropoutConfig, a))


def resolve_model_features(r: Resolution) -> None:
    a = r.args
    layer = model_rules.resolve_qkv_bias(from_namespace(LayerOptionsConfig, a))
    a.add_qkv_bias = layer.add_qkv_bias
    if not a.add_bias_linear:
        a.bias_gelu_fusion = False
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
    numerics = model_rules.resolve_softmax_precision(from_namespace(NumericsConfig, a))
    a.attention_softmax_in_fp32 = numerics.attention_softmax_in_fp32
    if a.mtp_num_layers is not None:
        require(
            a.position_embedding_type in ("rope", "none"),
            "--mtp-num-layers needs --position-embedding-type rope or none",
        )
        require(
            a.pipeline_model_parallel_size == 1,
            "--mtp-num-layers with --pipeline-model-parallel-size > 1 is not implemented yet",
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
    _resolve_moe(a)


def _resolve_moe(a: Any) -> None:
    """The original's single-value list flags become scalars; gpt-moe's rules apply."""
    for name in ("moe_router_load_balancing_type", "moe_aux_loss_coeff"):
        value = getattr(a, name)
        if isinstance(value, list) and len(value) == 1:
            setattr(a, name, value[0])
    _rule(
        lambda cfg: moe_rules.check_moe(cfg, add_bias_linear=a.add_bias_linear),
        from_namespace(MoEConfig, a),
    )
    if a.num_experts is None:
        return
    require(a.spec is None, "--num-experts cannot be combined with --spec")
    if a.moe_ffn_hidden_size is None:
        a.moe_ffn_hidden_size = a.ffn_hidden_size
    if isinstance(a.moe_layer_freq, list):
        require(
            len(a.moe_layer_freq) == a.num_layers,
            f"--moe-layer-freq pattern has {len(a.moe_layer_freq)} entries, expected "
            f"--num-layers {a.num_layers}",
        )
    else:
        require(
            a.moe_layer_freq >= 1, f"--moe-layer-freq must be at least 1, got {a.moe_layer_freq}"
        )
    if a.tensor_model_parallel_size > 1:
        require(
            a.sequence_parallel,
            "--num-experts with --tensor-model-parallel-size > 1 needs --sequence-parallel "
            "(the original's rule: each tensor-parallel rank routes its own tokens)",
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
