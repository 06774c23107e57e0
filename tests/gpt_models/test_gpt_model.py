"""GPTModel: names, shapes, loss, variants, recomputation and initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gpt_models.model import GPTModel
from gpt_models.original_names import (
    from_te_names,
    load_original_state_dict,
    to_te_names,
    uses_te_names,
)
from gpt_models.transformer_config import TransformerConfig

BASE = dict(
    num_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    padded_vocab_size=64,
    max_position_embeddings=16,
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
    return GPTModel(TransformerConfig.from_flat(**{**BASE, **overrides}))


def tokens(b: int = 2, s: int = 12) -> torch.Tensor:
    return torch.randint(0, 60, (b, s), generator=torch.Generator().manual_seed(1))


def test_state_dict_has_the_original_local_spec_names() -> None:
    sd = make().state_dict()
    layer = "decoder.layers.0."
    for key in (
        "embedding.word_embeddings.weight",
        "embedding.position_embeddings.weight",
        layer + "input_layernorm.weight",
        layer + "input_layernorm.bias",
        layer + "self_attention.linear_qkv.weight",
        layer + "self_attention.linear_qkv.bias",
        layer + "self_attention.linear_qkv._extra_state",
        layer + "self_attention.linear_proj.weight",
        layer + "pre_mlp_layernorm.weight",
        layer + "mlp.linear_fc1.weight",
        layer + "mlp.linear_fc2._extra_state",
        "decoder.final_layernorm.weight",
        "output_layer._extra_state",
    ):
        assert key in sd, key
    assert "output_layer.weight" not in sd  # tied to the word embeddings
    assert sd[layer + "self_attention.linear_qkv.weight"].shape == (3 * 32, 32)

    llama = make(**LLAMA).state_dict()
    assert llama[layer + "self_attention.linear_qkv.weight"].shape == ((4 + 2 * 2) * 8, 32)
    assert llama[layer + "mlp.linear_fc1.weight"].shape == (2 * 48, 32)
    assert "output_layer.weight" in llama and "embedding.position_embeddings.weight" not in llama
    assert not any(k.endswith(".bias") for k in llama)


def test_te_names_round_trip_and_load() -> None:
    model = make(**LLAMA)
    te = to_te_names(model.state_dict())
    assert uses_te_names(te)
    assert "decoder.layers.1.self_attention.linear_qkv.layer_norm_weight" in te
    assert "decoder.layers.1.mlp.linear_fc1.layer_norm_weight" in te
    assert "decoder.layers.1.self_attention.core_attention._extra_state" in te
    assert not any("input_layernorm" in k or "pre_mlp_layernorm" in k for k in te)
    assert list(from_te_names(te)) == list(model.state_dict())
    other = make(**LLAMA)
    torch.nn.init.zeros_(other.decoder.layers[0].input_layernorm.weight)
    load_original_state_dict(other, te)
    x = tokens()
    torch.testing.assert_close(other(x), model(x))


def test_loss_is_per_token_cross_entropy_of_the_logits() -> None:
    model = make()
    x, y = tokens(), tokens().roll(1, dims=1)
    logits = model(x)
    assert logits.shape == (2, 12, 64)
    loss = model(x, labels=y)
    assert loss.shape == (2, 12) and loss.dtype == torch.float32
    expected = F.cross_entropy(logits.reshape(-1, 64), y.reshape(-1), reduction="none")
    torch.testing.assert_close(loss.reshape(-1), expected)


def test_tied_output_layer_uses_the_embedding_matrix() -> None:
    model = make()
    hidden = torch.randn(3, 2, 32)
    expected = hidden @ model.embedding.word_embeddings.weight.t()
    torch.testing.assert_close(model.output_layer(hidden, model.output_weight()), expected)
    loss = model(tokens(), labels=tokens()).sum()
    loss.backward()
    assert model.embedding.word_embeddings.weight.grad is not None


def test_explicit_causal_mask_equals_no_mask_and_document_mask_changes_output() -> None:
    for backend in ("unfused", "auto"):
        model = make(attention_backend=backend).eval()
        x = tokens()
        causal = torch.ones(12, 12, dtype=torch.bool).triu(1)[None, None].expand(2, 1, 12, 12)
        torch.testing.assert_close(model(x, attention_mask=causal), model(x))
        reset = causal.clone()
        reset[:, :, 6:, :6] = True
        assert not torch.allclose(model(x, attention_mask=reset), model(x))


@pytest.mark.parametrize("variant", [{}, LLAMA])
def test_backends_agree_in_fp32(variant: dict) -> None:
    unfused = make(attention_backend="unfused", **variant)
    sdpa = make(attention_backend="auto", **variant)
    sdpa.load_state_dict(unfused.state_dict())
    x = tokens()
    torch.testing.assert_close(sdpa(x), unfused(x), atol=1e-5, rtol=1e-5)


def test_learned_positions_matter_and_none_has_no_table() -> None:
    model = make().eval()
    x = tokens()
    shifted = torch.arange(12)[None].expand(2, 12) + 2
    assert not torch.allclose(model(x, position_ids=shifted), model(x))
    none = make(position_embedding_type="none")
    assert none.embedding.position_embeddings is None and none.rotary_pos_emb is None
    assert none(x).shape == (2, 12, 64)


def test_rope_is_applied_unless_no_rope_freq_skips_the_layer() -> None:
    rope = make(**LLAMA)
    skipped = make(**LLAMA, no_rope_freq=(1, 1))
    skipped.load_state_dict(rope.state_dict())
    assert not any(layer.self_attention.apply_rope for layer in skipped.decoder.layers)
    x = tokens()
    assert not torch.allclose(rope(x), skipped(x))
    nope = make(**{**LLAMA, "position_embedding_type": "none"})
    nope.load_state_dict(rope.state_dict())
    torch.testing.assert_close(skipped(x), nope(x))


def test_dropout_is_active_in_training_only() -> None:
    model = make(hidden_dropout=0.3, attention_dropout=0.3)
    x = tokens()
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def _grads(model: GPTModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(5)
    model(x, labels=x).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


FULL_UNIFORM = {"recompute_granularity": "full", "recompute_method": "uniform"}


CORE_DROPOUT = "self_attention.core_attention.attention_dropout"


# Forward hooks are counted on modules that finish inside the recomputed region (the
# recomputation stops early once it has regenerated every saved tensor).
@pytest.mark.parametrize(
    ("recompute", "rerun", "not_rerun"),
    [
        ({**FULL_UNIFORM, "recompute_num_layers": 1}, "decoder.layers.1.input_layernorm", "output_layer"),
        ({**FULL_UNIFORM, "recompute_num_layers": 2}, "decoder.layers.1.input_layernorm", "decoder.final_layernorm"),
        (
            {"recompute_granularity": "full", "recompute_method": "block", "recompute_num_layers": 1},
            "decoder.layers.0.input_layernorm",
            "decoder.layers.1.input_layernorm",
        ),
        ({"recompute_granularity": "selective"}, "decoder.layers.0." + CORE_DROPOUT, "decoder.layers.0.mlp.linear_fc1"),
        (
            {"recompute_granularity": "selective", "recompute_modules": ("layernorm", "mlp")},
            "decoder.layers.0.pre_mlp_layernorm",
            "decoder.layers.0." + CORE_DROPOUT,
        ),
        (
            {"recompute_granularity": "selective", "recompute_modules": ("layernorm",)},
            "decoder.layers.1.input_layernorm",
            "decoder.layers.1.mlp.linear_fc2",
        ),
        (
            {"recompute_granularity": "selective", "recompute_modules": ("mlp", "core_attn")},
            "decoder.layers.1.mlp.linear_fc1",
            "decoder.layers.1.input_layernorm",
        ),
    ],
)  # fmt: skip
def test_recomputation_reruns_the_chosen_modules_with_identical_gradients(
    recompute: dict, rerun: str, not_rerun: str
) -> None:
    dropout = {"hidden_dropout": 0.2, "attention_dropout": 0.2, "attention_backend": "unfused"}
    plain = make(**dropout).train()
    again = make(**dropout, **recompute).train()
    again.load_state_dict(plain.state_dict())
    calls = {rerun: 0, not_rerun: 0}
    for name in calls:
        module = again.get_submodule(name)
        module.register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    x = tokens()
    expected, got = _grads(plain, x), _grads(again, x)
    assert calls == {rerun: 2, not_rerun: 1}  # forward once, plus the recomputation
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)


def test_post_layernorm_residual_and_qk_norms_change_the_computation() -> None:
    base = make()
    x = tokens()
    for overrides in (
        {"apply_residual_connection_post_layernorm": True},
        {"qk_layernorm": True},
        {"qk_l2_norm": True},
    ):
        other = make(**overrides)
        load_original_state_dict(other, base.state_dict(), strict=False)
        assert not torch.allclose(other(x), base(x)), overrides
    qk = make(qk_layernorm=True).state_dict()
    assert "decoder.layers.0.self_attention.q_layernorm.weight" in qk
    assert "decoder.layers.0.self_attention.k_layernorm.bias" in qk


def test_layernorm_1p_stores_zero_centred_weights() -> None:
    plain, one_p = make(), make(apply_layernorm_1p=True)
    assert torch.all(one_p.decoder.final_layernorm.weight == 0)
    sd = plain.state_dict()
    shifted = {k: (v - 1 if "layernorm.weight" in k else v) for k, v in sd.items()}
    one_p.load_state_dict(shifted)
    x = tokens()
    torch.testing.assert_close(one_p(x), plain(x))


def test_squared_relu_and_openai_gelu_models_run_and_differ() -> None:
    x = tokens()
    outs = [make(**o)(x) for o in ({}, {"squared_relu": True}, {"openai_gelu": True})]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_bf16_with_fp32_residual_stream_runs_and_keeps_fp32_loss() -> None:
    model = make(**LLAMA, params_dtype=torch.bfloat16, fp32_residual_connection=True)
    assert model.embedding.word_embeddings.weight.dtype == torch.bfloat16
    loss = model(tokens(), labels=tokens())
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    loss.mean().backward()


def test_meta_device_build_then_initialise_equals_direct_build() -> None:
    config = TransformerConfig.from_flat(**BASE, **LLAMA)
    direct = GPTModel(config, init_generator=torch.Generator().manual_seed(7))
    meta = GPTModel(config, device="meta")
    assert all(p.is_meta for p in meta.parameters())
    meta.to_empty(device="cpu")
    meta.initialize_parameters(torch.Generator().manual_seed(7))
    for (name, a), b in zip(direct.state_dict().items(), meta.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name
    x = tokens()
    torch.testing.assert_close(meta(x), direct(x))


def test_initialisation_statistics_follow_the_init_flags() -> None:
    model = GPTModel(
        TransformerConfig.from_flat(
            **{**BASE, "hidden_size": 256, "num_layers": 8, "init_method_std": 0.05}
        )
    )
    layer = model.decoder.layers[0]
    assert layer.self_attention.linear_qkv.weight.std().item() == pytest.approx(0.05, rel=0.05)
    assert layer.mlp.linear_fc2.weight.std().item() == pytest.approx(0.05 / 4, rel=0.05)
    assert torch.all(layer.self_attention.linear_qkv.bias == 0)
    assert torch.all(layer.input_layernorm.weight == 1)
    xavier = GPTModel(TransformerConfig.from_flat(**{**BASE, "init_method_xavier_uniform": True}))
    weight = xavier.decoder.layers[0].mlp.linear_fc1.weight
    bound = (6 / (weight.shape[0] + weight.shape[1])) ** 0.5
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound


def test_pipeline_stages_compose_to_the_full_model() -> None:
    config = TransformerConfig.from_flat(**BASE, untie_embeddings_and_output_weights=True)
    full = GPTModel(config)
    first = GPTModel(config, post_process=False, layer_numbers=[1])
    last = GPTModel(config, pre_process=False, layer_numbers=[2])
    sd = full.state_dict()
    first.load_state_dict({k: v for k, v in sd.items() if k in first.state_dict()})
    last.load_state_dict(
        {k.replace("layers.1.", "layers.0."): v for k, v in sd.items() if "layers.0." not in k
         and not k.startswith("embedding")}
    )  # fmt: skip
    x = tokens()
    hidden = first(x)
    assert hidden.shape == (12, 2, 32)
    torch.testing.assert_close(last(None, decoder_input=hidden), full(x))
