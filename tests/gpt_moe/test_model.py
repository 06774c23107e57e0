"""MoE and MTP in the GPT model: the spec's layer choice, the original's names (local and
Transformer Engine), initialisation in the original's draw order."""

from __future__ import annotations

import torch
from gpt_models import GPTModel, TransformerConfig
from gpt_models.original_names import from_te_names, load_original_state_dict, to_te_names
from gpt_models.spec import gpt_block_spec


def _config(**changes) -> TransformerConfig:
    values = dict(
        num_layers=2, hidden_size=32, num_attention_heads=4, max_position_embeddings=16,
        swiglu=True, normalization="RMSNorm", position_embedding_type="rope",
        add_bias_linear=False, untie_embeddings_and_output_weights=True, num_experts=4,
        moe_router_topk=2, moe_ffn_hidden_size=24, hidden_dropout=0.0, attention_dropout=0.0,
        padded_vocab_size=128,
    )  # fmt: skip
    values.update(changes)
    return TransformerConfig.from_flat(**values)


def test_the_layer_pattern_picks_moe_or_dense_per_layer():
    assert [s.mlp for s in gpt_block_spec(_config())] == ["moe", "moe"]
    assert [s.mlp for s in gpt_block_spec(_config(moe_layer_freq=[0, 1]))] == ["dense", "moe"]
    assert [s.mlp for s in gpt_block_spec(_config(num_layers=4, moe_layer_freq=2))] == [
        "moe", "dense", "moe", "dense"
    ]  # fmt: skip


def test_moe_and_mtp_models_carry_the_originals_names():
    config = _config(
        moe_layer_freq=[0, 1],
        moe_shared_expert_intermediate_size=16,
        moe_router_score_function="sigmoid",
        moe_router_enable_expert_bias=True,
        mtp_num_layers=1,
    )
    torch.manual_seed(0)
    names = set(GPTModel(config).state_dict())
    for name in (
        "decoder.layers.0.mlp.linear_fc1.weight",
        "decoder.layers.1.mlp.router.weight",
        "decoder.layers.1.mlp.router.expert_bias",
        "decoder.layers.1.mlp.experts.local_experts.3.linear_fc2.weight",
        "decoder.layers.1.mlp.shared_experts.linear_fc1.weight",
        "mtp.layers.0.enorm.weight",
        "mtp.layers.0.hnorm.weight",
        "mtp.layers.0.eh_proj.weight",
        "mtp.layers.0.transformer_layer.mlp.router.weight",
        "mtp.layers.0.final_layernorm.weight",
    ):
        assert name in names, name


def test_te_names_round_trip_and_grouped_experts_load():
    torch.manual_seed(0)
    model = GPTModel(_config(mtp_num_layers=1))
    ours = model.state_dict()
    te = to_te_names(ours)
    assert "decoder.layers.0.pre_mlp_layernorm.weight" in te  # MoE layers keep their norm
    assert "mtp.layers.0.transformer_layer.self_attention.linear_qkv.layer_norm_weight" in te
    assert set(from_te_names(te)) == set(ours)
    grouped = {}
    for key, value in te.items():
        if ".local_experts." in key and key.endswith(".weight"):
            prefix, rest = key.split("local_experts.")
            j, linear, _ = rest.split(".")
            grouped[f"{prefix}{linear}.weight{j}"] = value
        elif ".local_experts." not in key:
            grouped[key] = value
    other = GPTModel(_config(mtp_num_layers=1))
    load_original_state_dict(other, grouped)
    for key, value in other.state_dict().items():
        if value is not None:
            torch.testing.assert_close(value, ours[key])


def test_mtp_loss_joins_the_backward_pass_and_is_logged():
    torch.manual_seed(0)
    model = GPTModel(_config(mtp_num_layers=1, mtp_loss_scaling_factor=0.5))
    tokens = torch.randint(0, 128, (2, 16))
    labels = torch.roll(tokens, -1, dims=1)
    loss = model(tokens, labels=labels).mean()
    loss.backward()
    assert model.mtp.layers[0].eh_proj.weight.grad is not None
    report = model.mtp.losses.report(num_microbatches=1)
    assert list(report) == ["mtp_1 loss"] and 3.0 < report["mtp_1 loss"] < 6.0
