"""The runtime description of a dense GPT transformer: gpt-models' flag classes, composed.

No field re-declares a flag: the model's settings are the flag classes themselves
(``architecture``, ``dropout``, ``layer``, ``init``, ``numerics``, ``qk_norm``, ``mla``,
``impl``), and ``config.hidden_size`` looks the name up in the part that owns it, so a renamed
flag fails loudly instead of falling back to a default. The few values that are not gpt-models
flags (the padded vocabulary, the parameter dtype, the YaRN knobs) are plain fields. The
shape rules (ffn size, kv channels, query groups, ...) live in ``model_rules`` and are applied
once, in ``__post_init__``; the object is frozen afterwards.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from gpt_flags.flagspec import flag_fields
from gpt_moe.config import MoEConfig

from gpt_models.config import (
    ArchitectureConfig,
    DropoutConfig,
    InitConfig,
    LayerOptionsConfig,
    MLAConfig,
    NumericsConfig,
    QKNormConfig,
    TransformerImplConfig,
)
from gpt_models.model_rules import (
    TransformerConfigError,
    UnsupportedFeatureError,
    check_dropout,
    check_qk_norm,
    resolve_architecture,
    resolve_init,
    resolve_qkv_bias,
    resolve_softmax_precision,
)

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

#: Each part of a TransformerConfig and the flag class it holds.
PARTS: dict[str, type] = {
    "architecture": ArchitectureConfig,
    "dropout": DropoutConfig,
    "layer": LayerOptionsConfig,
    "init": InitConfig,
    "numerics": NumericsConfig,
    "qk_norm": QKNormConfig,
    "mla": MLAConfig,
    "impl": TransformerImplConfig,
    "moe": MoEConfig,
}


def _owners() -> dict[str, str]:
    owners: dict[str, str] = {}
    for part, cls in PARTS.items():
        for f in flag_fields(cls):
            if f.name in owners:  # pragma: no cover - a flag declared twice fails at import
                raise RuntimeError(f"{f.name} is declared by {owners[f.name]} and {part}")
            owners[f.name] = part
    return owners


#: flag dest -> the part that owns it.
OWNER: dict[str, str] = _owners()

__all__ = [
    "PARTS",
    "TransformerConfig",
    "TransformerConfigError",
    "UnsupportedFeatureError",
]


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    """Everything the single-device GPT math needs, frozen after construction."""

    architecture: ArchitectureConfig
    """Network size, positions, norms, activation (the "network size" flags)."""
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    layer: LayerOptionsConfig = field(default_factory=LayerOptionsConfig)
    """Recompute, fusions, biases."""
    init: InitConfig = field(default_factory=InitConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    qk_norm: QKNormConfig = field(default_factory=QKNormConfig)
    mla: MLAConfig = field(default_factory=MLAConfig)
    """Also holds the YaRN scaling flags (rotary_scaling_factor, mscale, mscale_all_dim)."""
    impl: TransformerImplConfig = field(default_factory=TransformerImplConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    """Experts, router and token dispatch (gpt-moe's flags); no experts by default."""

    # --- not gpt-models flags ------------------------------------------------------------
    padded_vocab_size: int
    """Embedding and output width (the tokenizer vocab padded as the original pads it)."""
    params_dtype: torch.dtype = torch.float32
    """Dtype of the parameters and activations (from --fp16/--bf16)."""
    perform_initialization: bool = True
    """False leaves parameters uninitialised (gpt-ckpt's --no-initialization)."""
    yarn_original_max_position_embeddings: int | None = None
    """YaRN pre-extension context length (no flag); None means max_position_embeddings."""
    yarn_beta_fast: float = 32.0
    """YaRN fast rotation boundary (no flag)."""
    yarn_beta_slow: float = 1.0
    """YaRN slow rotation boundary (no flag)."""
    yarn_correction_range_round_to_int: bool = True
    """Round the YaRN correction range to whole dims (no flag)."""

    # Derived, filled in by __post_init__.
    init_std_output_layers: float = field(init=False, default=0.0)
    """std/sqrt(2*num_layers), the init std of linear_proj and linear_fc2."""

    def __post_init__(self) -> None:
        for part, cls in PARTS.items():
            if not isinstance(getattr(self, part), cls):
                raise TypeError(f"TransformerConfig.{part} must be a {cls.__name__}")
        value = self.padded_vocab_size
        if not isinstance(value, int) or value <= 0:
            raise TransformerConfigError(
                f"--padded-vocab-size must be a positive integer, got {value!r}"
            )
        check_dropout(self.dropout)
        check_qk_norm(self.qk_norm)
        arch = resolve_architecture(self.architecture)
        for name in ("no_rope_freq",):
            if isinstance(getattr(arch, name), list):
                arch = dataclasses.replace(arch, **{name: tuple(getattr(arch, name))})
        layer = resolve_qkv_bias(self.layer)
        if isinstance(layer.recompute_modules, list):
            layer = dataclasses.replace(layer, recompute_modules=tuple(layer.recompute_modules))
        self._set("architecture", arch)
        self._set("layer", layer)
        self._set("numerics", resolve_softmax_precision(self.numerics))
        self._set("moe", self._resolved_moe())
        self._set("init", resolve_init(self.init))
        self._set("init_std_output_layers", self.init_method_std / math.sqrt(2.0 * self.num_layers))
        self._check_choices()

    def __getattr__(self, name: str) -> Any:
        """A flag's value, from the part that owns it (only called when normal lookup fails)."""
        part = OWNER.get(name)
        if part is None or name.startswith("__"):
            raise AttributeError(f"TransformerConfig has no setting {name!r}")
        return getattr(object.__getattribute__(self, part), name)

    @property
    def num_query_groups(self) -> int | None:
        """Key/value groups for GQA; None means multi-head attention (one group per head)."""
        arch = self.architecture
        return arch.num_query_groups if arch.group_query_attention else None

    # ----------------------------------------------------------------------------------
    @classmethod
    def from_flat(cls, **values: Any) -> TransformerConfig:
        """Build from flag dests (tests, conversions): each name goes to the part that owns it.

        ``num_query_groups=None`` means MHA; an int turns --group-query-attention on. An
        unknown name is a TypeError, never ignored.
        """
        parts: dict[str, dict[str, Any]] = {part: {} for part in PARTS}
        plain: dict[str, Any] = {}
        plain_names = {f.name for f in dataclasses.fields(cls) if f.init} - set(PARTS)
        for name, value in values.items():
            if name == "num_query_groups":
                arch = parts["architecture"]
                arch["group_query_attention"] = value is not None
                if value is not None:
                    arch["num_query_groups"] = value
            elif name in OWNER:
                parts[OWNER[name]][name] = value
            elif name in plain_names:
                plain[name] = value
            else:
                raise TypeError(f"TransformerConfig has no setting {name!r}")
        built = {part: PARTS[part](**kwargs) for part, kwargs in parts.items()}
        return cls(**built, **plain)

    def replace(self, **changes: Any) -> TransformerConfig:
        """A copy with some settings changed (flag dests or plain fields); the rest carry over."""
        parts: dict[str, dict[str, Any]] = {part: {} for part in PARTS}
        plain: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "num_query_groups":
                parts["architecture"]["group_query_attention"] = value is not None
                if value is not None:
                    parts["architecture"]["num_query_groups"] = value
            elif name in OWNER:
                parts[OWNER[name]][name] = value
            elif name in PARTS or name in {f.name for f in dataclasses.fields(self) if f.init}:
                plain[name] = value
            else:
                raise TypeError(f"TransformerConfig has no setting {name!r}")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        for part, kwargs in parts.items():
            if kwargs:
                values[part] = dataclasses.replace(values[part], **kwargs)
        values.update(plain)
        return TransformerConfig(**values)

    def _resolved_moe(self) -> MoEConfig:
        """Expert ffn size defaults to --ffn-hidden-size; a layer pattern list becomes a tuple."""
        moe = self.moe
        if moe.num_experts is None:
            return moe
        changes: dict[str, Any] = {}
        if moe.moe_ffn_hidden_size is None:
            changes["moe_ffn_hidden_size"] = self.architecture.ffn_hidden_size
        if isinstance(moe.moe_layer_freq, list):
            changes["moe_layer_freq"] = tuple(moe.moe_layer_freq)
        return dataclasses.replace(moe, **changes) if changes else moe

    @property
    def is_moe(self) -> bool:
        """Some layers have routed experts (--num-experts)."""
        return self.num_experts is not None

    def moe_layer_pattern(self) -> tuple[bool, ...]:
        """Per decoder layer: MoE (True) or dense, from --moe-layer-freq (an int N makes every
        N-th layer MoE starting with the first; a list gives each layer)."""
        if not self.is_moe:
            return (False,) * self.num_layers
        freq = self.moe_layer_freq
        if isinstance(freq, int):
            return tuple(i % freq == 0 for i in range(self.num_layers))
        if len(freq) != self.num_layers:
            raise TransformerConfigError(
                f"--moe-layer-freq pattern has {len(freq)} entries, expected --num-layers "
                f"{self.num_layers}"
            )
        return tuple(bool(x) for x in freq)

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

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
