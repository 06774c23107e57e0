"""The original's FLOPs formula on hand-computed configurations."""

from __future__ import annotations

from gpt_models.flops import num_floating_point_operations


def test_dense_mha_flops_by_hand() -> None:
    # h=64, s=32, 2 layers, ffn 256, 4 heads, V=1024, batch 8: the golden 'gpt' run.
    per_layer_attention = 6 * (64 * 192 + 64 * 32 + 64 * 64)
    mlp = 6 * 64 * 256 * 2 * 2
    logits = 6 * 64 * 1024
    expected = 8 * 32 * (mlp + 2 * per_layer_attention + logits)
    assert expected == 257_949_696
    got = num_floating_point_operations(
        batch_size=8,
        seq_length=32,
        num_layers=2,
        hidden_size=64,
        ffn_hidden_size=256,
        num_attention_heads=4,
        padded_vocab_size=1024,
    )
    assert got == expected


def test_gqa_swiglu_and_mtp_terms() -> None:
    common = dict(
        batch_size=1,
        seq_length=16,
        num_layers=2,
        hidden_size=32,
        ffn_hidden_size=64,
        num_attention_heads=4,
        padded_vocab_size=100,
    )
    base = num_floating_point_operations(**common)
    gqa = num_floating_point_operations(**common, num_query_groups=2)
    # Two fewer kv heads of width 8, for k and v, in each of 2 layers.
    assert base - gqa == 16 * 2 * 6 * 32 * (2 * 2 * 8)
    swiglu = num_floating_point_operations(**common, swiglu=True)
    assert swiglu - base == 16 * 6 * 32 * 64 * 2  # one extra h x ffn GEMM per layer
    mtp = num_floating_point_operations(**common, mtp_num_layers=1)
    layer = (base - 16 * 6 * 32 * 100) / 2  # per-layer share without the logits
    extra = 16 * (6 * (3 * 32 + 2 * 32 * 32) + 6 * 32 * 100)
    assert mtp == base + layer + extra
