"""The one place that decides how each building block is made: its kernel, its split, its tags.

Layers never read fusion flags, environment switches or process groups: they ask the provider
for a linear layer, an embedding, the output layer and loss, a norm, a core attention module, a
fused function or the compiled region they run in. ``Provider`` is the protocol;
``LocalProvider`` the pure-PyTorch backend (a Transformer Engine one can come behind the same
protocol).

The provider holds the parallel context: ``TensorParallelPartition`` (size, rank, group,
sequence parallel) and ``ContextParallelPartition`` (size, rank, groups, comm type per layer).
Linear layers and embeddings are built with their full sizes and made at this rank's size, as
the tensor-parallel modules of ``parallel_layers`` when the model is split; every parameter is
tagged with its split (``tp_shards.tag``), which initialisation, merging and splitting read,
and replicated parameters whose gradient each rank holds only in part are marked
(``mark_tensor_parallel_partial_grad``) so the training step sums it over the group. Under
context parallelism the core attention is ``ContextParallelAttention``.

Fusion flags and compilation: a layer with any fused kernel on (the original's defaults) runs
as one compiled region (``kernels.regions``), its fused kernels traced into it; a kernel whose
``--no-*-fusion`` flag is given runs its plain reference eagerly inside that region; a layer
with no fusion at all runs eagerly. ``--cross-entropy-loss-fusion`` compiles the output layer
and the loss as a second region. The provider's ``compile`` choice (``"off"`` by default, the
pretrain app passes its environment's) decides whether regions and kernels compile at all;
the regions, fused kernels and the logits pool belong to the provider, not to a module.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

import torch
from torch import nn

from gpt_models.embedding import Embedding, LanguageModelEmbedding, OutputLayer
from gpt_models.kernels import activations
from gpt_models.kernels.attention import DotProductAttention, SDPAttention
from gpt_models.kernels.bias_dropout_add import bias_dropout_add_reference
from gpt_models.kernels.compiled import CompileChoice, Compiled, check_compile_choice
from gpt_models.kernels.cross_entropy import cross_entropy_formula, cross_entropy_inplace
from gpt_models.kernels.logits import LogitsPool
from gpt_models.kernels.regions import eager, layer_region, loss_region
from gpt_models.kernels.rope import apply_rope_reference
from gpt_models.kernels.softmax import scale_mask_softmax_reference
from gpt_models.linear import Linear
from gpt_models.norms import L2Norm, build_norm
from gpt_models.parallel_layers import (
    ColumnParallelLinear,
    ContextParallelAttention,
    RowParallelLinear,
    VocabParallelEmbedding,
    VocabParallelOutputLayer,
    scatter_to_sequence_shards,
    vocab_parallel_loss,
)
from gpt_models.partition import ContextParallelPartition, TensorParallelPartition
from gpt_models.tp_shards import (
    COLUMN,
    REPLICATED,
    ROW,
    TensorSplit,
    mark_tensor_parallel_partial_grad,
    tag,
)
from gpt_models.transformer_config import TransformerConfig

BiasActivation = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
Device = torch.device | str | None


class Provider(Protocol):
    """What a model asks its backend for. Sizes passed in are global; modules come back at
    this rank's size with every parameter tagged with its split."""

    config: TransformerConfig
    partition: TensorParallelPartition
    context: ContextParallelPartition

    def column_parallel_linear(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        skip_bias_add: bool,
        stride: int = 1,
        device: Device = None,
    ) -> nn.Module: ...

    def row_parallel_linear(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        skip_bias_add: bool,
        device: Device = None,
    ) -> nn.Module: ...

    def embedding(self, device: Device = None) -> nn.Module: ...

    def output_layer(self, *, own_weight: bool, device: Device = None) -> OutputLayer: ...

    def cross_entropy(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]: ...

    def norm(self, hidden_size: int, device: Device = None) -> nn.Module: ...

    def qk_norm(self, head_dim: int, device: Device = None) -> nn.Module | None: ...

    def core_attention(self, layer_number: int) -> nn.Module: ...

    def tensor_parallel_rng_runner(self) -> Callable[..., torch.Tensor] | None: ...

    def layer_region(self) -> Compiled | None: ...

    def loss_region(self) -> Compiled | None: ...

    def bias_activation(self) -> BiasActivation: ...

    def bias_dropout_add(self) -> Callable[..., torch.Tensor]: ...

    def apply_rope(self) -> Callable[..., torch.Tensor]: ...


def _tag_all(module: nn.Module, split: TensorSplit) -> nn.Module:
    """Tag every parameter of ``module`` (norms, replicated tables) with ``split``."""
    for param in module.parameters():
        tag(param, split)
    return module


class LocalProvider:
    """Pure-PyTorch kernels; the fusion switches pick compiled or plain variants."""

    def __init__(
        self,
        config: TransformerConfig,
        partition: TensorParallelPartition | None = None,
        *,
        context: ContextParallelPartition | None = None,
        compile: CompileChoice = "off",
        rng_fork: Callable[[], AbstractContextManager] | None = None,
    ) -> None:
        """``rng_fork`` enters the model-parallel RNG stream (the RNG tracker's ``fork``, each
        tensor-parallel rank seeded differently): dropout inside the tensor-parallel region
        and on sequence shards draws from it, as in the original."""
        self.config = config
        self._rng_fork = rng_fork
        self.partition = partition or TensorParallelPartition()
        self.partition.check(config)
        self.context = context or ContextParallelPartition()
        self.context.check(config)
        self.compile = check_compile_choice(compile)
        self.logits_pool = LogitsPool()
        self._layer_region = layer_region(self.compile)
        self._loss_region = loss_region(self.compile)
        self._fused: dict[str, Compiled] = {}

    def fused(self, fn: Callable[..., torch.Tensor], name: str) -> Compiled:
        """``fn`` compiled under this provider's choice (one per kernel, shared by layers)."""
        if name not in self._fused:
            self._fused[name] = Compiled(fn, name, mode=self.compile)
        return self._fused[name]

    # ----------------------------------------------------------------- building blocks
    def column_parallel_linear(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        skip_bias_add: bool,
        stride: int = 1,
        device: Device = None,
    ) -> nn.Module:
        """y = x W^T with W's rows (outputs) split over ranks; ``stride`` > 1 for outputs
        laid out as ``stride`` stacked blocks (swiglu's [gate; up])."""
        rows = self.partition.divide(out_features, "output width")
        layer = self._linear(
            ColumnParallelLinear,
            in_features,
            rows,
            bias=bias,
            skip_bias_add=skip_bias_add,
            device=device,
        )
        split = TensorSplit(COLUMN.dim, stride)
        tag(layer.weight, split)
        tag(layer.bias, split)
        return layer

    def row_parallel_linear(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        skip_bias_add: bool,
        device: Device = None,
    ) -> nn.Module:
        """y = x W^T with W's columns (inputs) split over ranks; the bias is replicated."""
        layer = self._linear(
            RowParallelLinear,
            self.partition.divide(in_features, "input width"),
            out_features,
            bias=bias,
            skip_bias_add=skip_bias_add,
            device=device,
        )
        tag(layer.weight, ROW)
        tag(layer.bias, REPLICATED)
        if self.partition.sequence_parallel:
            mark_tensor_parallel_partial_grad(layer.bias)  # added to sequence shards
        return layer

    def _linear(
        self,
        parallel_kind: type[Linear],
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        skip_bias_add: bool,
        device: Device,
    ) -> Linear:
        """The one-rank ``Linear``, or its tensor-parallel kind when the model is split."""
        sizes = dict(bias=bias, skip_bias_add=skip_bias_add, device=device)
        if self.partition.size == 1:
            return Linear(in_features, out_features, dtype=self.config.params_dtype, **sizes)
        return parallel_kind(
            in_features,
            out_features,
            dtype=self.config.params_dtype,
            partition=self.partition,
            **sizes,
        )

    def embedding(self, device: Device = None) -> LanguageModelEmbedding:
        """Word embeddings split by vocabulary rows (the original's vocab-parallel embedding),
        learned positions (--position-embedding-type learned_absolute) replicated."""
        c, part = self.config, self.partition
        learned_positions = c.position_embedding_type == "learned_absolute"
        rows = part.vocab_per_rank(c)
        if part.size == 1:
            words = Embedding(rows, c.hidden_size, device=device, dtype=c.params_dtype)
        else:
            words = VocabParallelEmbedding(
                rows,
                c.hidden_size,
                partition=part,
                reduce_scatter=part.sequence_parallel and not learned_positions,
                device=device,
                dtype=c.params_dtype,
            )
        tag(words.weight, COLUMN)
        positions = None
        if learned_positions:
            positions = Embedding(
                c.max_position_embeddings, c.hidden_size, device=device, dtype=c.params_dtype
            )
            tag(positions.weight, REPLICATED)
        to_shards = None
        if part.sequence_parallel and learned_positions:

            def to_shards(x: torch.Tensor) -> torch.Tensor:
                return scatter_to_sequence_shards(x, part)

        dropout_runner = self.tensor_parallel_rng_runner() if part.sequence_parallel else None
        return LanguageModelEmbedding(
            c, words, positions, to_sequence_shards=to_shards, dropout_runner=dropout_runner
        )

    def output_layer(self, *, own_weight: bool, device: Device = None) -> OutputLayer:
        """Logits over this rank's vocabulary rows (its weight split like the embeddings)."""
        c = self.config
        sizes = dict(
            own_weight=own_weight, logits_pool=self.logits_pool, device=device, dtype=c.params_dtype
        )
        rows = self.partition.vocab_per_rank(c)
        if self.partition.size == 1:
            layer = OutputLayer(rows, c.hidden_size, **sizes)
        else:
            layer = VocabParallelOutputLayer(rows, c.hidden_size, partition=self.partition, **sizes)
        tag(layer.weight, COLUMN)
        return layer

    def norm(self, hidden_size: int, device: Device = None) -> nn.Module:
        """The model's norm (--normalization, --norm-epsilon, --apply-layernorm-1p), replicated."""
        c = self.config
        norm = build_norm(
            c.normalization,
            hidden_size,
            c.norm_epsilon,
            c.apply_layernorm_1p,
            device=device,
            dtype=c.params_dtype,
        )
        _tag_all(norm, REPLICATED)
        if self.partition.sequence_parallel:
            for param in norm.parameters():
                mark_tensor_parallel_partial_grad(param)  # each rank normalises its shard
        return norm

    def qk_norm(self, head_dim: int, device: Device = None) -> nn.Module | None:
        """Per-head norm of queries and keys, or None. Each tensor-parallel rank normalises its
        own heads, so the (shared) weights' gradients are summed over the ranks."""
        if self.config.qk_l2_norm:
            return L2Norm(head_dim, self.config.norm_epsilon)
        if self.config.qk_layernorm:
            norm = self.norm(head_dim, device)
            if self.partition.size > 1:
                for param in norm.parameters():
                    mark_tensor_parallel_partial_grad(param)
            return norm
        return None

    def core_attention(self, layer_number: int) -> nn.Module:
        """The attention kernel for --attention-backend."""
        c = self.config
        assert c.kv_channels is not None
        if self.context.size > 1:
            return ContextParallelAttention(
                self.context,
                layer_number=layer_number,
                kv_channels=c.kv_channels,
                attention_dropout=c.attention_dropout,
            )
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

    def tensor_parallel_rng_runner(self) -> Callable[..., torch.Tensor] | None:
        """``run(fn, *args)``: ``fn`` in the model-parallel RNG stream, eagerly (the stream
        switch stays out of compiled graphs); None when nothing needs it (one tensor-parallel
        rank, no tracker, or no dropout to draw)."""
        c = self.config
        if self.partition.size == 1 or self._rng_fork is None:
            return None
        if c.attention_dropout == 0.0 and c.hidden_dropout == 0.0:
            return None
        fork = self._rng_fork

        def run(fn: Callable[..., torch.Tensor], *args: object) -> torch.Tensor:
            with fork():
                return fn(*args)

        return eager(run)

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
        return self._layer_region if self.layer_fusions() else None

    def loss_region(self) -> Compiled | None:
        """The compiled region of the output layer and loss (--cross-entropy-loss-fusion)."""
        return self._loss_region if self.config.cross_entropy_loss_fusion else None

    def _plain(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """An unfused kernel: eager even inside the layer's compiled region."""
        return eager(fn) if self.layer_region() is not None else fn

    # ---------------------------------------------------------------------- functions
    def bias_activation(self) -> BiasActivation:
        """fc1 output and its (unadded) bias -> activation output, as the original's MLP."""
        c = self.config
        if c.bias_activation_fusion:
            if c.swiglu:
                return self.fused(activations.bias_swiglu_reference, "bias_swiglu")
            return self.fused(activations.bias_gelu_reference, "bias_gelu")
        act = activations.swiglu if c.swiglu else activations.ACTIVATIONS[c.activation]

        def plain(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            return act(x if bias is None else x + bias)

        return self._plain(plain)

    def bias_dropout_add(self) -> Callable[..., torch.Tensor]:
        """residual + dropout(x + bias)."""
        if self.config.bias_dropout_fusion:
            return self.fused(bias_dropout_add_reference, "bias_dropout_add")
        return self._plain(bias_dropout_add_reference)

    def masked_softmax(self) -> Callable[..., torch.Tensor]:
        """Scale, mask and softmax of attention scores."""
        if self.config.masked_softmax_fusion:
            return self.fused(scale_mask_softmax_reference, "scale_mask_softmax")
        return self._plain(scale_mask_softmax_reference)

    def apply_rope(self) -> Callable[..., torch.Tensor]:
        """Rotate queries and keys."""
        if self.config.apply_rope_fusion:
            return self.fused(apply_rope_reference, "apply_rope")
        return self._plain(apply_rope_reference)

    def cross_entropy(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Per-token loss over the padded vocabulary. Like the original's, the unfused loss
        overwrites the logits it is given (the model's own temporary) to save their copy."""
        if self.partition.size > 1:
            return vocab_parallel_loss(self.partition)
        if self.config.cross_entropy_loss_fusion:
            return self.fused(cross_entropy_formula, "cross_entropy")
        return cross_entropy_inplace


def provider_for(
    config: TransformerConfig,
    partition: TensorParallelPartition | None = None,
    *,
    context: ContextParallelPartition | None = None,
    compile: CompileChoice = "off",
    rng_fork: Callable[[], AbstractContextManager] | None = None,
) -> LocalProvider:
    """The provider for --transformer-impl; Transformer Engine kernels are not wired in yet,
    so both choices use the local kernels (the state dict can still be exported with TE names)."""
    return LocalProvider(config, partition, context=context, compile=compile, rng_fork=rng_fork)
