"""Weight initialisation that reproduces the original's CPU initialisation draw for draw.

The original (``--use-cpu-initialization``) draws each full weight on the CPU generator, in
the order its modules are constructed: word embeddings; the learned position table (torch's
nn.Embedding first fills it with N(0, 1), then the init method redraws it); then per layer
``linear_proj`` (built by the attention base class before) ``linear_qkv``, ``linear_fc1``,
``linear_fc2``; then an untied output layer. Normal std is ``--init-method-std``; linear_proj
and linear_fc2 use std / sqrt(2 * num_layers); embeddings use ``--embedding-init-method-std``.
Biases are zero, norm weights one (zero with --apply-layernorm-1p). Seeded with the same seed,
this gives bit-identical weights to the original's checkpoints.

Under tensor parallelism every rank draws the full (global-shape) master weight, read from the
parameter's split tags and the partition, and keeps its own slice, as the original's
``_initialize_affine_weight_cpu``: the draws, and so the full model, do not depend on the
tensor-parallel size.

A pipeline stage holds only some of these weights. By default it draws just those, as the
original's stages do (each seeded there with ``seed + 100 * pp_rank``); with
``layout_independent`` it walks the one-process model's draws, filling the weights it holds
and drawing-and-discarding the others, so that, seeded alike, every stage holds exactly the
one-process model's numbers whatever the pipeline layout (see ``initialize_gpt_parameters``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from gpt_models.linear import Linear
from gpt_models.norms import LayerNorm, RMSNorm
from gpt_models.partition import TensorParallelPartition
from gpt_models.tp_shards import full_shape, shard, split_of
from gpt_models.transformer_config import TransformerConfig

SKIP_CHUNK = 1 << 22
"""Numbers drawn at a time when skipping a tensor another stage holds (16 MiB of fp32)."""


class InitFn(Protocol):
    """Fills a tensor from the generator, and can skip the draws of one it does not hold."""

    def __call__(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None: ...

    def skip(self, shape: Sequence[int], generator: torch.Generator | None) -> None:
        """Advance ``generator`` exactly as filling a tensor of ``shape`` would."""
        ...


def _skip_in_chunks(numel: int, draw: Callable[[torch.Tensor], object]) -> None:
    """Draw ``numel`` fp32 numbers with ``draw`` and discard them, ``SKIP_CHUNK`` at a time.

    torch's CPU ``normal_`` transforms its uniforms in blocks of 16 and redraws the last block
    of a length that is not a multiple of 16, and draws lengths under 16 one by one; so the
    chunks are multiples of 16 and the remainder joins the last chunk: the generator then ends
    where one whole draw would leave it (``uniform_`` draws one number per element anyway)."""
    chunk = SKIP_CHUNK
    if chunk % 16:
        raise ValueError(f"SKIP_CHUNK {chunk} must be a multiple of 16")
    while numel > 0:
        size = min(chunk, numel)
        if numel - size < 16:
            size = numel
        draw(torch.empty(size, dtype=torch.float32))
        numel -= size


@dataclass(frozen=True)
class NormalInit:
    """N(0, std) in place."""

    std: float

    def __call__(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        tensor.normal_(0.0, self.std, generator=generator)

    def skip(self, shape: Sequence[int], generator: torch.Generator | None) -> None:
        _skip_in_chunks(math.prod(shape), lambda t: t.normal_(generator=generator))


@dataclass(frozen=True)
class XavierUniformInit:
    """Xavier-uniform in place (--init-method-xavier-uniform)."""

    def __call__(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        nn.init.xavier_uniform_(tensor, generator=generator)

    def skip(self, shape: Sequence[int], generator: torch.Generator | None) -> None:
        _skip_in_chunks(math.prod(shape), lambda t: t.uniform_(generator=generator))


def normal_init(std: float) -> InitFn:
    """N(0, std) in place."""
    return NormalInit(std)


xavier_uniform_init: InitFn = XavierUniformInit()


def init_methods(config: TransformerConfig) -> tuple[InitFn, InitFn, InitFn]:
    """(init for most linears, init for linear_proj/linear_fc2, init for embeddings)."""
    assert config.embedding_init_method_std is not None
    embedding = normal_init(config.embedding_init_method_std)
    if config.init_method_xavier_uniform:
        return xavier_uniform_init, xavier_uniform_init, embedding
    return (
        normal_init(config.init_method_std),
        normal_init(config.init_std_output_layers),
        embedding,
    )


def master_shape(
    param: torch.Tensor, partition: TensorParallelPartition | None = None
) -> tuple[int, ...]:
    """The full (unsplit) shape of ``param``, from its split tags and the partition."""
    if partition is None or partition.size == 1:
        return tuple(param.shape)
    return full_shape(param.shape, split_of(param), partition.size)


@torch.no_grad()
def draw_into(
    param: torch.Tensor | None,
    init: InitFn,
    generator: torch.Generator | None,
    partition: TensorParallelPartition | None = None,
) -> None:
    """Draw the full fp32 master tensor on the CPU and copy (cast) this rank's slice of it
    into ``param`` (the whole of it without a partition or for a replicated tensor)."""
    if param is None:
        return
    partition = partition or TensorParallelPartition()
    master = torch.empty(master_shape(param, partition), dtype=torch.float32, device="cpu")
    init(master, generator)
    if partition.size > 1:
        master = shard(master, split_of(param), partition.size, partition.rank)
    param.copy_(master)


@torch.no_grad()
def reset_small_parameters(modules: Iterable[nn.Module]) -> None:
    """Zero the linear biases and reset norm weights (no random draws)."""
    for module in modules:
        if isinstance(module, Linear) and module.bias is not None:
            module.bias.zero_()
        elif isinstance(module, LayerNorm | RMSNorm):
            module.reset_parameters()


@dataclass(frozen=True)
class MasterDraw:
    """One full weight of the one-process model, named as in its state dict."""

    name: str
    shape: tuple[int, ...]
    init: InitFn
    reset_first: bool = False
    """torch's nn.Embedding first fills the table with N(0, 1) (default dtype), then the
    original's init redraws it: those numbers are drawn, and thrown away, first."""
    expert: bool = False
    """A routed expert's weight: a rank holding other experts draws and discards it, so every
    expert-parallel layout holds the one-process model's experts."""


WORD_EMBEDDINGS = "embedding.word_embeddings.weight"
POSITION_EMBEDDINGS = "embedding.position_embeddings.weight"
OUTPUT_LAYER = "output_layer.weight"


def _layer_names(number: int) -> tuple[str, str, str, str]:
    """linear_proj, linear_qkv, linear_fc1, linear_fc2 of global layer ``number`` (1-based)."""
    prefix = f"decoder.layers.{number - 1}."
    return (
        prefix + "self_attention.linear_proj.weight",
        prefix + "self_attention.linear_qkv.weight",
        prefix + "mlp.linear_fc1.weight",
        prefix + "mlp.linear_fc2.weight",
    )


def master_draws(config: TransformerConfig) -> tuple[MasterDraw, ...]:
    """Every random draw of the one-process dense GPT model, in the original's order.

    A new kind of layer (MoE, Mamba, MTP) must add its weights here, in the order the original
    constructs them; ``initialize_gpt_parameters`` fails on any weight missing from this list."""
    assert config.kv_channels is not None and config.ffn_hidden_size is not None
    linear, output_side, embedding = init_methods(config)
    h, d = config.hidden_size, config.kv_channels
    ffn = config.ffn_hidden_size
    draws = [MasterDraw(WORD_EMBEDDINGS, (config.padded_vocab_size, h), embedding)]
    if config.position_embedding_type == "learned_absolute":
        shape = (config.max_position_embeddings, h)
        draws.append(MasterDraw(POSITION_EMBEDDINGS, shape, embedding, reset_first=True))
    shapes = (
        (h, config.num_attention_heads * d),
        ((config.num_attention_heads + 2 * config.num_groups) * d, h),
        (ffn * (2 if config.gated_linear_unit else 1), h),
        (h, ffn),
    )
    moe_layers = config.moe_layer_pattern()
    for number in range(1, config.num_layers + 1):
        names = _layer_names(number)
        draws.append(MasterDraw(names[0], shapes[0], output_side))
        draws.append(MasterDraw(names[1], shapes[1], linear))
        if moe_layers[number - 1]:
            draws.extend(_moe_draws(config, f"decoder.layers.{number - 1}.mlp."))
        else:
            draws.append(MasterDraw(names[2], shapes[2], linear))
            draws.append(MasterDraw(names[3], shapes[3], output_side))
    for k in range(config.mtp_num_layers or 0):
        draws.extend(_mtp_draws(config, k, shapes, moe_layers[-1]))
    if not config.share_embeddings_and_output_weights:
        draws.append(MasterDraw(OUTPUT_LAYER, (config.padded_vocab_size, h), linear))
    return tuple(draws)


def _mtp_draws(config: TransformerConfig, k: int, shapes: tuple, moe: bool) -> list[MasterDraw]:
    """MTP depth k: eh_proj, then its transformer layer (shaped like the decoder's last)."""
    linear, output_side, _ = init_methods(config)
    h = config.hidden_size
    prefix = f"mtp.layers.{k}."
    layer = prefix + "transformer_layer."
    draws = [
        MasterDraw(prefix + "eh_proj.weight", (h, 2 * h), linear),
        MasterDraw(layer + "self_attention.linear_proj.weight", shapes[0], output_side),
        MasterDraw(layer + "self_attention.linear_qkv.weight", shapes[1], linear),
    ]
    if moe:
        draws.extend(_moe_draws(config, layer + "mlp."))
    else:
        draws.append(MasterDraw(layer + "mlp.linear_fc1.weight", shapes[2], linear))
        draws.append(MasterDraw(layer + "mlp.linear_fc2.weight", shapes[3], output_side))
    return draws


def _layer_held(layer: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A transformer layer's drawn weights under ``prefix`` (its state-dict prefix)."""
    held = {
        prefix + "self_attention.linear_proj.weight": layer.self_attention.linear_proj.weight,
        prefix + "self_attention.linear_qkv.weight": layer.self_attention.linear_qkv.weight,
    }
    if getattr(layer, "is_moe", False):
        held.update(_moe_held(layer.mlp, prefix + "mlp."))
    else:
        held[prefix + "mlp.linear_fc1.weight"] = layer.mlp.linear_fc1.weight
        held[prefix + "mlp.linear_fc2.weight"] = layer.mlp.linear_fc2.weight
    return held


def _moe_draws(config: TransformerConfig, prefix: str) -> list[MasterDraw]:
    """An MoE MLP's draws in the original's construction order: the router, each expert's
    fc1 and fc2, then the shared expert's fc1 and fc2."""
    linear, output_side, _ = init_methods(config)
    h, halves = config.hidden_size, 2 if config.gated_linear_unit else 1
    ffn = config.moe_ffn_hidden_size
    draws = [MasterDraw(prefix + "router.weight", (config.num_experts, h), linear)]
    for j in range(config.num_experts):
        expert = f"{prefix}experts.local_experts.{j}."
        draws.append(
            MasterDraw(expert + "linear_fc1.weight", (ffn * halves, h), linear, expert=True)
        )
        draws.append(MasterDraw(expert + "linear_fc2.weight", (h, ffn), output_side, expert=True))
    shared = config.moe_shared_expert_intermediate_size
    if shared is not None:
        draws.append(
            MasterDraw(prefix + "shared_experts.linear_fc1.weight", (shared * halves, h), linear)
        )
        draws.append(
            MasterDraw(prefix + "shared_experts.linear_fc2.weight", (h, shared), output_side)
        )
    return draws


def _moe_held(mlp: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """An MoE MLP's drawn weights by one-process name (experts by their global index)."""
    held = {prefix + "router.weight": mlp.router.weight}
    for local, expert in zip(mlp.local_expert_indices, mlp.experts.local_experts, strict=True):
        name = f"{prefix}experts.local_experts.{local}."
        held[name + "linear_fc1.weight"] = expert.linear_fc1.weight
        held[name + "linear_fc2.weight"] = expert.linear_fc2.weight
    if mlp.shared_experts is not None:
        held[prefix + "shared_experts.linear_fc1.weight"] = mlp.shared_experts.linear_fc1.weight
        held[prefix + "shared_experts.linear_fc2.weight"] = mlp.shared_experts.linear_fc2.weight
    return held


def held_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The randomly drawn weights this stage holds, by their one-process names (a tied output
    layer's own weight, on a last stage without the embedding, as ``output_layer.weight``)."""
    held: dict[str, torch.Tensor] = {}
    embedding = getattr(model, "embedding", None)
    if embedding is not None:
        held[WORD_EMBEDDINGS] = embedding.word_embeddings.weight
        if embedding.position_embeddings is not None:
            held[POSITION_EMBEDDINGS] = embedding.position_embeddings.weight
    for layer in model.decoder.layers:
        held.update(_layer_held(layer, f"decoder.layers.{layer.layer_number - 1}."))
    mtp = getattr(model, "mtp", None)
    for k, mtp_layer in enumerate(mtp.layers if mtp is not None else ()):
        held[f"mtp.layers.{k}.eh_proj.weight"] = mtp_layer.eh_proj.weight
        held.update(_layer_held(mtp_layer.transformer_layer, f"mtp.layers.{k}.transformer_layer."))
    output_layer = getattr(model, "output_layer", None)
    if output_layer is not None and output_layer.weight is not None:
        held[OUTPUT_LAYER] = output_layer.weight
    return held


def _draw_held(
    name: str,
    param: torch.Tensor,
    draw: MasterDraw,
    generator: torch.Generator | None,
    partition: TensorParallelPartition | None,
) -> None:
    """``draw_into``, after checking the stage's weight has the shape the draw list gives."""
    shape = master_shape(param, partition)
    if shape != draw.shape:
        raise ValueError(f"{name}: full shape {shape} is not the {draw.shape} the config gives")
    draw_into(param, draw.init, generator, partition)


@torch.no_grad()
def initialize_gpt_parameters(
    model: nn.Module,
    config: TransformerConfig,
    generator: torch.Generator | None = None,
    partition: TensorParallelPartition | None = None,
    *,
    layout_independent: bool = False,
) -> None:
    """Initialise a GPTModel (this rank's slices of it) in the original's draw order
    (``generator`` None = torch's default).

    By default a pipeline stage draws only the weights it holds, in order, as each of the
    original's stages does (seeded there with ``seed + 100 * pp_rank``), so the original's
    pipeline checkpoints are reproduced. With ``layout_independent`` the stage instead walks
    the one-process model's draws, filling the weights it holds and drawing-and-discarding
    (chunk by chunk, so memory stays bounded) those of the other stages: seeded alike, every
    stage then holds exactly the one-process model's numbers, whatever the layout. A tied
    output layer's own copy on a last stage without the embedding gets the word-embedding
    draw, i.e. the values the original copies there from the first stage. The cost: every
    stage spends the CPU time of drawing the whole model. The one-process model skips
    nothing, so both ways give it the same numbers."""
    held = held_weights(model)
    tied = config.share_embeddings_and_output_weights
    tied_copy = held.pop(OUTPUT_LAYER, None) if tied else None
    if layout_independent and tied_copy is not None:
        if WORD_EMBEDDINGS in held:
            raise ValueError("a stage holding the word embeddings has no tied output copy")
        held[WORD_EMBEDDINGS], tied_copy = tied_copy, None
    for draw in master_draws(config):
        param = held.pop(draw.name, None)
        if param is None and not layout_independent and not draw.expert:
            continue
        if draw.reset_first:
            torch.empty(draw.shape).normal_(generator=generator)
        if param is None:
            draw.init.skip(draw.shape, generator)
        else:
            _draw_held(draw.name, param, draw, generator, partition)
    if held:
        raise ValueError(f"no initialisation rule for {', '.join(sorted(held))}")
    reset_small_parameters(model.modules())
    if tied_copy is not None:
        # The original draws its last stage's tied copy, built last, with the linear init
        # (then overwrites it with the first stage's embeddings).
        draw_into(tied_copy, init_methods(config)[0], generator, partition)
