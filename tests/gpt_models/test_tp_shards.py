"""Tensor-parallel shards: merging inverts splitting, and the shards compute the full MLP;
how each tensor splits is read from the model's parameter tags."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from gpt_models.model import GPTModel
from gpt_models.tp_shards import (
    COLUMN,
    REPLICATED,
    ROW,
    TensorSplit,
    merge_tensor_parallel_shards,
    split_tensor_parallel,
    tensor_parallel_layout,
)
from gpt_models.transformer_config import TransformerConfig

CONFIG = TransformerConfig.from_flat(
    num_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    num_query_groups=2,
    padded_vocab_size=64,
    max_position_embeddings=16,
    swiglu=True,
    ffn_hidden_size=48,
    position_embedding_type="rope",
    normalization="RMSNorm",
    untie_embeddings_and_output_weights=True,
)


def test_split_then_merge_is_the_identity() -> None:
    model = GPTModel(CONFIG)
    sd, layout = model.state_dict(), tensor_parallel_layout(model)
    shards = split_tensor_parallel(sd, layout, 2)
    qkv = "decoder.layers.0.self_attention.linear_qkv.weight"
    assert shards[0][qkv].shape[0] == sd[qkv].shape[0] // 2  # one whole query group per rank
    assert shards[1]["decoder.layers.0.self_attention.linear_proj.weight"].shape == (32, 16)
    merged = merge_tensor_parallel_shards(shards, layout)
    assert list(merged) == list(sd)
    for key, value in sd.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(merged[key], value), key


def test_each_rank_reads_its_fc1_shard_as_gate_then_up() -> None:
    torch.manual_seed(0)
    model = GPTModel(CONFIG)
    sd, layout = model.state_dict(), tensor_parallel_layout(model)
    fc1, fc2 = "decoder.layers.0.mlp.linear_fc1.weight", "decoder.layers.0.mlp.linear_fc2.weight"
    x = torch.randn(5, 32)
    full = F.linear(F.silu(F.linear(x, sd[fc1][:48])) * F.linear(x, sd[fc1][48:]), sd[fc2])
    partial = torch.zeros_like(full)
    for shard in split_tensor_parallel(sd, layout, 2):
        gate, up = shard[fc1].chunk(2)  # what a TP rank computes with its own shard
        partial += F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), shard[fc2])
    torch.testing.assert_close(partial, full)


def test_the_layout_comes_from_the_tags() -> None:
    layout = tensor_parallel_layout(GPTModel(CONFIG, device="meta"))
    assert layout["embedding.word_embeddings.weight"] == COLUMN
    assert layout["output_layer.weight"] == COLUMN
    assert layout["decoder.layers.1.self_attention.linear_proj.weight"] == ROW
    assert layout["decoder.layers.1.mlp.linear_fc1.weight"] == TensorSplit(0, stride=2)
    assert layout["decoder.layers.1.self_attention.linear_proj.bias"] == REPLICATED
    assert layout["decoder.layers.1.self_attention.linear_qkv.bias"] == COLUMN
    assert layout["decoder.final_layernorm.weight"] == REPLICATED
    assert "decoder.layers.1.self_attention.linear_qkv._extra_state" not in layout
