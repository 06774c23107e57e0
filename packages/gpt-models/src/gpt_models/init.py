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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from gpt_models.linear import Linear
from gpt_models.norms import LayerNorm, RMSNorm
from gpt_models.partition import TensorParallelPartition
from gpt_models.tp_shards import full_shape, shard, split_of
from gpt_models.transformer_config import TransformerConfig

InitFn = Callable[[torch.Tensor, torch.Generator | None], None]


def normal_init(std: float) -> InitFn:
    """N(0, std) in place."""

    def init(tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        tensor.normal_(0.0, std, generator=generator)

    return init


def xavier_uniform_init(tensor: torch.Tensor, generator: torch.Generator | None) -> None:
    """Xavier-uniform in place (--init-method-xavier-uniform)."""
    nn.init.xavier_uniform_(tensor, generator=generator)


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
    split = split_of(param) if partition.size > 1 else None
    shape = param.shape if split is None else full_shape(param.shape, split, partition.size)
    master = torch.empty(shape, dtype=torch.float32, device="cpu")
    init(master, generator)
    if split is not None:
        master = shard(master, split, partition.size, partition.rank)
    param.copy_(master)


@torch.no_grad()
def reset_small_parameters(modules: Iterable[nn.Module]) -> None:
    """Zero the linear biases and reset norm weights (no random draws)."""
    for module in modules:
        if isinstance(module, Linear) and module.bias is not None:
            module.bias.zero_()
        elif isinstance(module, LayerNorm | RMSNorm):
            module.reset_parameters()


@torch.no_grad()
def initialize_gpt_parameters(
    model: nn.Module,
    config: TransformerConfig,
    generator: torch.Generator | None = None,
    partition: TensorParallelPartition | None = None,
) -> None:
    """Initialise a GPTModel (this rank's slices of it) in the original's draw order
    (``generator`` None = torch's default)."""
    linear_init, output_side_init, embedding_init = init_methods(config)
    embedding = getattr(model, "embedding", None)
    if embedding is not None:
        draw_into(embedding.word_embeddings.weight, embedding_init, generator, partition)
        position = embedding.position_embeddings
        if position is not None:
            # nn.Embedding's own N(0, 1) reset, which the original's init then overwrites.
            torch.empty(position.weight.shape).normal_(generator=generator)
            draw_into(position.weight, embedding_init, generator, partition)
    for layer in model.decoder.layers:
        attention, mlp = layer.self_attention, layer.mlp
        draw_into(attention.linear_proj.weight, output_side_init, generator, partition)
        draw_into(attention.linear_qkv.weight, linear_init, generator, partition)
        draw_into(mlp.linear_fc1.weight, linear_init, generator, partition)
        draw_into(mlp.linear_fc2.weight, output_side_init, generator, partition)
    reset_small_parameters(model.modules())
    output_layer = getattr(model, "output_layer", None)
    if output_layer is not None:
        draw_into(output_layer.weight, linear_init, generator, partition)
