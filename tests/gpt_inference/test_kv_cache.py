"""Decoding through the KV cache computes what one full forward pass computes."""

from __future__ import annotations

import pytest
import torch
from gpt_inference.kv_cache import StaticKVCache, cached_attention
from gpt_inference.runner import ModelRunner
from gpt_models.model import GPTModel
from gpt_models.transformer_config import TransformerConfig

BASE = dict(
    num_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    padded_vocab_size=64,
    max_position_embeddings=32,
    hidden_dropout=0.0,
    attention_dropout=0.0,
)
LLAMA = dict(
    position_embedding_type="rope",
    normalization="RMSNorm",
    swiglu=True,
    add_bias_linear=False,
    untie_embeddings_and_output_weights=True,
    num_query_groups=2,
    ffn_hidden_size=48,
)


def make(**overrides) -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(TransformerConfig.from_flat(**{**BASE, **overrides})).eval()


@pytest.mark.parametrize(
    "variant",
    [{}, LLAMA, {**LLAMA, "attention_backend": "unfused"}],
    ids=["gpt", "llama-sdpa", "llama-unfused"],
)
def test_prefill_then_one_token_steps_equal_the_full_forward(variant):
    model = make(**variant)
    ids = torch.randint(0, 60, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
    runner = ModelRunner(model)
    cache = StaticKVCache(12)
    steps = [runner.logits(ids[:, :5], torch.arange(5).expand(3, -1), cache)]
    for pos in range(5, 12):
        cache.start = pos
        steps.append(runner.logits(ids[:, pos : pos + 1], torch.tensor([[pos]] * 3), cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_a_multi_token_chunk_after_cached_positions_is_causal():
    model = make(**LLAMA)
    ids = torch.randint(0, 60, (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids)
    runner = ModelRunner(model)
    cache = StaticKVCache(10)
    first = runner.logits(ids[:, :4], torch.arange(4).expand(2, -1), cache)
    cache.start = 4
    rest = runner.logits(ids[:, 4:], torch.arange(4, 10).expand(2, -1), cache)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=1e-5)


def test_the_model_gets_its_own_attention_back_afterwards():
    model = make()
    before = [layer.self_attention.core_attention for layer in model.decoder.layers]
    with cached_attention(model, StaticKVCache(4)):
        inside = [layer.self_attention.core_attention for layer in model.decoder.layers]
    after = [layer.self_attention.core_attention for layer in model.decoder.layers]
    assert all(a is not b for a, b in zip(before, inside))
    assert all(a is b for a, b in zip(before, after))


def test_the_cache_refuses_positions_past_its_length():
    model = make()
    cache = StaticKVCache(4)
    with pytest.raises(ValueError, match="cannot hold position 6"):
        ModelRunner(model).logits(torch.zeros(1, 6, dtype=torch.long), torch.arange(6)[None], cache)
