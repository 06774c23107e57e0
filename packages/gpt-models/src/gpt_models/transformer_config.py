"""The runtime description of a dense GPT transformer.

Field names are the original's argparse dests wherever a flag exists, so the app can map its
parsed flags onto this dataclass one to one. Defaults are the original's argparse defaults
(v0.14). Values that the original derives (``ffn_hidden_size``, ``kv_channels``, ...) are
resolved once in ``__post_init__``; the object is frozen afterwards.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

NORMALIZATIONS = ("LayerNorm", "RMSNorm")
POSITION_EMBEDDING_TYPES = ("learned_absolute", "rope", "yarn", "none")
UNSUPPORTED_POSITION_EMBEDDING_TYPES = ("mrope", "relative")
ATTENTION_BACKENDS = ("flash", "fused", "unfused", "local", "auto")
RECOMPUTE_GRANULARITIES = ("full", "selective")
RECOMPUTE_METHODS = ("uniform", "block")
RECOMPUTE_MODULES = (
    "core_attn",
    "moe_act",
    "layernorm",
    "mla_up_proj",
    "mlp",
    "moe",
    "shared_experts",
)
TRANSFORMER_IMPLS = ("local", "transformer_engine")


class TransformerConfigError(ValueError):
    """A model setting that cannot work; the message names the flag and the value."""


class UnsupportedFeatureError(TransformerConfigError, NotImplementedError):
    """A valid setting of the original that this model does not implement."""


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    """Everything the single-device GPT math needs, frozen after construction."""

    # --- network size -------------------------------------------------------------------
    num_layers: int
    """Number of transformer layers."""
    hidden_size: int
    """Transformer hidden size h."""
    num_attention_heads: int
    """Number of query heads."""
    padded_vocab_size: int
    """Embedding and output width (the tokenizer vocab padded as the original pads it)."""
    max_position_embeddings: int
    """Rows of the learned position table; also the YaRN original length when unset."""
    ffn_hidden_size: int | None = None
    """MLP width; None means 4h, or int(8h/3/64)*64 with swiglu (the original's rule)."""
    kv_channels: int | None = None
    """Head dimension; None means h / num_attention_heads."""
    num_query_groups: int | None = None
    """Key/value groups for GQA; None means multi-head attention (one group per head)."""
    untie_embeddings_and_output_weights: bool = False
    """Give the output layer its own weight instead of reusing the word embeddings."""

    # --- norms and residuals ------------------------------------------------------------
    normalization: str = "LayerNorm"
    """LayerNorm or RMSNorm."""
    norm_epsilon: float = 1e-5
    """Epsilon of every norm."""
    apply_layernorm_1p: bool = False
    """Zero-centred gamma: the norm multiplies by (1 + weight) and weights start at 0."""
    apply_residual_connection_post_layernorm: bool = False
    """BERT ordering: the residual branch starts from the norm output."""
    fp32_residual_connection: bool = False
    """Keep the residual stream in fp32 when the parameters are fp16/bf16."""
    qk_layernorm: bool = False
    """Normalise queries and keys per head with the model's norm type."""
    qk_l2_norm: bool = False
    """Llama-4 style parameter-free L2 (RMS) norm of queries and keys."""

    # --- MLP ------------------------------------------------------------------------------
    swiglu: bool = False
    """Gated linear unit with SiLU: fc1 holds [gate; up]."""
    squared_relu: bool = False
    """relu(x)**2 activation."""
    openai_gelu: bool = False
    """tanh-approximated GeLU (GPT-2's gelu_new) instead of the exact erf GeLU."""
    add_bias_linear: bool = True
    """Biases in every linear layer (the original's --disable-bias-linear turns it off)."""
    add_qkv_bias: bool = False
    """Bias in linear_qkv only; forced on when add_bias_linear is on."""

    # --- dropout and attention numerics -------------------------------------------------
    hidden_dropout: float = 0.1
    """Dropout on embeddings and before each residual add."""
    attention_dropout: float = 0.1
    """Dropout on the attention probabilities."""
    apply_query_key_layer_scaling: bool = False
    """Scale Q.K^T by 1/layer_number before the fp32 softmax (and back inside it)."""
    attention_softmax_in_fp32: bool = False
    """Run masking and softmax in fp32; forced on by apply_query_key_layer_scaling."""

    # --- initialisation -------------------------------------------------------------------
    init_method_std: float = 0.02
    """Std of the normal init; output-side layers use std/sqrt(2*num_layers)."""
    embedding_init_method_std: float | None = None
    """Std for embeddings; None means init_method_std."""
    init_method_xavier_uniform: bool = False
    """Xavier-uniform init for the linear layers instead of the normal init."""
    use_cpu_initialization: bool = False
    """Draw full weights on the CPU generator (the original's TP-invariant init)."""
    perform_initialization: bool = True
    """False leaves parameters uninitialised (the original's --no-initialization)."""

    # --- position embeddings --------------------------------------------------------------
    position_embedding_type: str = "learned_absolute"
    """learned_absolute, rope, yarn or none."""
    rotary_base: int = 10000
    """RoPE base period."""
    rotary_percent: float = 1.0
    """Fraction of each head's channels that are rotated."""
    rotary_interleaved: bool = False
    """Rotate adjacent channel pairs instead of the two halves."""
    rotary_seq_len_interpolation_factor: float | None = None
    """Linear position interpolation: positions are divided by this factor."""
    use_rope_scaling: bool = False
    """Llama-3.x frequency scaling."""
    rope_scaling_factor: float = 8.0
    """Llama-3.x scaling factor."""
    rope_type: str | None = None
    """rope or yarn; 'yarn' with position_embedding_type rope selects YaRN."""
    rotary_scaling_factor: float = 1.0
    """YaRN scaling factor."""
    mscale: float | None = 1.0
    """YaRN mscale (None with mscale_all_dim None: HF's default attention factor)."""
    mscale_all_dim: float | None = 0.0
    """YaRN mscale_all_dim."""
    yarn_original_max_position_embeddings: int | None = None
    """YaRN pre-extension context length (no flag); None means max_position_embeddings."""
    yarn_beta_fast: float = 32.0
    """YaRN fast rotation boundary (no flag)."""
    yarn_beta_slow: float = 1.0
    """YaRN slow rotation boundary (no flag)."""
    yarn_correction_range_round_to_int: bool = True
    """Round the YaRN correction range to whole dims (no flag)."""
    no_rope_freq: int | tuple[int, ...] | None = None
    """Skip RoPE every N-th layer (int N) or where the per-layer pattern holds 1."""

    # --- kernels --------------------------------------------------------------------------
    transformer_impl: str = "transformer_engine"
    """local or transformer_engine; selects the kernel provider (and the TE naming)."""
    attention_backend: str = "auto"
    """flash, fused, unfused, local or auto."""
    masked_softmax_fusion: bool = True
    """Fused scale+mask+softmax (compiled) in the unfused attention path."""
    bias_gelu_fusion: bool = True
    """Fused bias+GeLU; like the original it uses the tanh approximation."""
    bias_swiglu_fusion: bool = True
    """Fused bias+SwiGLU."""
    bias_dropout_fusion: bool = True
    """Fused bias+dropout+residual add."""
    apply_rope_fusion: bool = True
    """Fused RoPE application."""
    cross_entropy_loss_fusion: bool = False
    """Fused cross-entropy."""
    cross_entropy_fusion_impl: str = "native"
    """native or te; both run our compiled cross-entropy here."""
    fp16_lm_cross_entropy: bool = False
    """Compute the LM cross-entropy on fp16 logits instead of fp32."""

    # --- precision ------------------------------------------------------------------------
    params_dtype: torch.dtype = torch.float32
    """Dtype of the parameters and activations."""

    # --- activation recomputation ---------------------------------------------------------
    recompute_granularity: str | None = None
    """None, full or selective."""
    recompute_method: str | None = None
    """uniform or block (full granularity only)."""
    recompute_num_layers: int | None = None
    """Layers per recompute chunk (uniform) or number of recomputed layers (block)."""
    recompute_modules: tuple[str, ...] | None = None
    """Submodules recomputed with selective granularity; None means ('core_attn',)."""

    # Derived, filled in by __post_init__ (not flags).
    init_std_output_layers: float = field(init=False, default=0.0)
    """std/sqrt(2*num_layers), the init std of linear_proj and linear_fc2."""

    def __post_init__(self) -> None:
        self._check_sizes()
        self._resolve_derived()
        self._check_choices()

    # ----------------------------------------------------------------------------------
    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _check_sizes(self) -> None:
        for name in (
            "num_layers",
            "hidden_size",
            "num_attention_heads",
            "padded_vocab_size",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise TransformerConfigError(
                    f"{_flag(name)} must be a positive integer, got {value!r}"
                )
        if self.kv_channels is None and self.hidden_size % self.num_attention_heads:
            raise TransformerConfigError(
                f"--hidden-size {self.hidden_size} is not divisible by "
                f"--num-attention-heads {self.num_attention_heads}; pass --kv-channels"
            )
        groups = self.num_query_groups
        if groups is not None and (groups <= 0 or self.num_attention_heads % groups):
            raise TransformerConfigError(
                f"--num-query-groups {groups} must divide "
                f"--num-attention-heads {self.num_attention_heads}"
            )

    def _resolve_derived(self) -> None:
        h = self.hidden_size
        if self.kv_channels is None:
            self._set("kv_channels", h // self.num_attention_heads)
        if self.ffn_hidden_size is None:
            ffn = int((4 * h * 2 / 3) / 64) * 64 if self.swiglu else 4 * h
            self._set("ffn_hidden_size", ffn)
        if self.add_bias_linear:
            self._set("add_qkv_bias", True)
        if self.apply_query_key_layer_scaling:
            self._set("attention_softmax_in_fp32", True)
        if self.embedding_init_method_std is None:
            self._set("embedding_init_method_std", self.init_method_std)
        if isinstance(self.no_rope_freq, list):
            self._set("no_rope_freq", tuple(self.no_rope_freq))
        if isinstance(self.recompute_modules, list):
            self._set("recompute_modules", tuple(self.recompute_modules))
        self._set("init_std_output_layers", self.init_method_std / math.sqrt(2.0 * self.num_layers))

    def _check_choices(self) -> None:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise TransformerConfigError(
                    f"{_flag(name)} {value!r} is not one of {', '.join(allowed)}"
                )

        if self.position_embedding_type in UNSUPPORTED_POSITION_EMBEDDING_TYPES:
            raise UnsupportedFeatureError(
                f"--position-embedding-type {self.position_embedding_type} is not implemented "
                "for the GPT model (use learned_absolute, rope or none)"
            )
        choice("position_embedding_type", POSITION_EMBEDDING_TYPES)
        choice("normalization", NORMALIZATIONS)
        choice("attention_backend", ATTENTION_BACKENDS)
        choice("transformer_impl", TRANSFORMER_IMPLS)
        if self.rope_type is not None:
            choice("rope_type", ("rope", "yarn"))
        if self.cross_entropy_fusion_impl not in ("native", "te"):
            choice("cross_entropy_fusion_impl", ("native", "te"))
        if sum((self.swiglu, self.squared_relu, self.openai_gelu)) > 1:
            raise TransformerConfigError(
                "--swiglu, --squared-relu and --openai-gelu are mutually exclusive"
            )
        if not 0.0 < self.rotary_percent <= 1.0:
            raise TransformerConfigError(
                f"--rotary-percent must be in (0, 1], got {self.rotary_percent}"
            )
        if self.qk_layernorm and self.qk_l2_norm:
            raise TransformerConfigError("--qk-layernorm and --qk-l2-norm are mutually exclusive")
        if self.rotary_interleaved and self.uses_yarn:
            raise TransformerConfigError("YaRN RoPE does not support --rotary-interleaved")
        self._check_no_rope_freq()
        self._check_recompute()

    def _check_no_rope_freq(self) -> None:
        freq = self.no_rope_freq
        if freq is None:
            return
        if isinstance(freq, int):
            if freq <= 0 or self.num_layers % freq:
                raise TransformerConfigError(
                    f"--no-rope-freq {freq} must be a positive divisor of --num-layers "
                    f"{self.num_layers}"
                )
        elif len(freq) != self.num_layers:
            raise TransformerConfigError(
                f"--no-rope-freq pattern has {len(freq)} entries, expected --num-layers "
                f"{self.num_layers}"
            )

    def _check_recompute(self) -> None:
        granularity = self.recompute_granularity
        if granularity is None:
            return
        if granularity not in RECOMPUTE_GRANULARITIES:
            raise TransformerConfigError(
                f"--recompute-granularity {granularity!r} is not one of full, selective"
            )
        if granularity == "full":
            if self.recompute_method not in RECOMPUTE_METHODS:
                raise TransformerConfigError(
                    "--recompute-granularity full needs --recompute-method uniform or block, "
                    f"got {self.recompute_method!r}"
                )
            if not self.recompute_num_layers or self.recompute_num_layers <= 0:
                raise TransformerConfigError(
                    "--recompute-granularity full needs a positive --recompute-num-layers, "
                    f"got {self.recompute_num_layers!r}"
                )
        else:
            if self.recompute_method is not None:
                raise TransformerConfigError(
                    "--recompute-method is only valid with --recompute-granularity full"
                )
            for module in self.recompute_modules or ():
                if module not in RECOMPUTE_MODULES:
                    raise TransformerConfigError(
                        f"--recompute-modules {module!r} is not one of "
                        f"{', '.join(RECOMPUTE_MODULES)}"
                    )

    # ---------------------------------------------------------------- derived views ---
    @property
    def num_groups(self) -> int:
        """Key/value groups actually used (heads when MHA)."""
        return self.num_query_groups or self.num_attention_heads

    @property
    def gated_linear_unit(self) -> bool:
        """fc1 produces [gate; up] (swiglu)."""
        return self.swiglu

    @property
    def activation(self) -> str:
        """Name of the MLP nonlinearity: gelu, openai_gelu, squared_relu or silu."""
        if self.swiglu:
            return "silu"
        if self.squared_relu:
            return "squared_relu"
        if self.openai_gelu:
            return "openai_gelu"
        return "gelu"

    @property
    def uses_rope(self) -> bool:
        """Rotary embeddings (standard or YaRN) are applied to queries and keys."""
        return self.position_embedding_type in ("rope", "yarn")

    @property
    def uses_yarn(self) -> bool:
        """YaRN frequencies: position_embedding_type yarn, or rope with rope_type yarn."""
        return self.position_embedding_type == "yarn" or (
            self.position_embedding_type == "rope" and self.rope_type == "yarn"
        )

    @property
    def share_embeddings_and_output_weights(self) -> bool:
        """The output layer reuses the word embedding matrix."""
        return not self.untie_embeddings_and_output_weights

    @property
    def bias_activation_fusion(self) -> bool:
        """The original's effective bias+activation fusion switch for this activation."""
        if self.swiglu:
            return self.bias_swiglu_fusion
        if self.activation == "gelu":
            return self.bias_gelu_fusion and self.add_bias_linear
        return False

    @property
    def selective_recompute_modules(self) -> tuple[str, ...]:
        """Submodules recomputed under selective granularity (empty otherwise)."""
        if self.recompute_granularity != "selective":
            return ()
        return self.recompute_modules or ("core_attn",)

    def rope_skipped(self, layer_index: int) -> bool:
        """Whether layer ``layer_index`` (0-based) skips RoPE under --no-rope-freq."""
        freq = self.no_rope_freq
        if freq is None:
            return False
        if isinstance(freq, int):
            return (layer_index + 1) % freq == 0
        return bool(freq[layer_index])

    def replace(self, **changes: object) -> TransformerConfig:
        """A copy with some fields changed; values resolved earlier (ffn size, ...) carry over."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        values.update(changes)
        return TransformerConfig(**values)
