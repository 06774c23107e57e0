"""HF GPT-2 / Llama / Mistral / Qwen2 / Mixtral models load into GPTModel with the same
logits, and map back."""

from __future__ import annotations

import pytest
import torch
from gpt_models.hf_mapping import (
    HFMappingError,
    fuse_qkv,
    gpt_to_hf_state_dict,
    hf_to_gpt_state_dict,
    split_qkv,
    transformer_config_from_hf,
)
from gpt_models.model import GPTModel
from gpt_models.original_names import load_original_state_dict
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 100
LLAMA_SIZES = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=64,
    bos_token_id=0,
    eos_token_id=0,
)


def gpt2(**changes) -> tuple[type, GPT2Config]:
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        **changes,
    )
    return GPT2LMHeadModel, cfg


CASES = {
    "gpt2": gpt2,
    "llama-mha": lambda: (LlamaForCausalLM, LlamaConfig(**LLAMA_SIZES, num_key_value_heads=4)),
    "llama-gqa": lambda: (LlamaForCausalLM, LlamaConfig(**LLAMA_SIZES, num_key_value_heads=2)),
    "llama-tied-biased": lambda: (
        LlamaForCausalLM,
        LlamaConfig(
            **LLAMA_SIZES,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            attention_bias=True,
            mlp_bias=True,
        ),
    ),
    "llama3-scaled-rope": lambda: (
        LlamaForCausalLM,
        LlamaConfig(
            **LLAMA_SIZES,
            num_key_value_heads=2,
            rope_parameters={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_theta": 10000.0,
            },
        ),
    ),
    "llama-yarn": lambda: (
        LlamaForCausalLM,
        LlamaConfig(
            **LLAMA_SIZES,
            num_key_value_heads=2,
            rope_parameters={
                "rope_type": "yarn",
                "factor": 4.0,
                "original_max_position_embeddings": 16,
                "rope_theta": 10000.0,
            },
        ),
    ),
    "qwen2": lambda: (Qwen2ForCausalLM, Qwen2Config(**LLAMA_SIZES, num_key_value_heads=2)),
    "mistral": lambda: (MistralForCausalLM, MistralConfig(**LLAMA_SIZES, num_key_value_heads=2)),
    "mixtral": lambda: (
        MixtralForCausalLM,
        MixtralConfig(
            **LLAMA_SIZES, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2
        ),
    ),
    "gpt2-exact-gelu": lambda: gpt2(activation_function="gelu"),
}


def _hf_model(name: str):
    cls, cfg = CASES[name]()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = cls(cfg).eval()
    with torch.no_grad():  # random norms and biases, so every mapped tensor matters
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.normal_(1.0 if "norm" in name or "ln_" in name else 0.0, 0.3)
    return model, cfg


@pytest.mark.parametrize("name", list(CASES))
def test_hf_weights_give_the_same_logits_in_fp32(name: str) -> None:
    hf, hf_cfg = _hf_model(name)
    config = transformer_config_from_hf(hf_cfg, padded_vocab_size=128, attention_backend="unfused")
    ours = GPTModel(config).eval()
    load_original_state_dict(ours, hf_to_gpt_state_dict(hf.state_dict(), hf_cfg, config))
    x = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = hf(x).logits, ours(x)
    assert got.shape == (2, 24, 128)
    assert (got[..., :VOCAB] - expected).abs().max().item() < 1e-4
    assert torch.all(got[..., VOCAB:] == 0)  # padded rows are zero

    if name == "mixtral":  # maps back to the files' per-expert names (tests/convert_ckpt)
        return
    back = gpt_to_hf_state_dict(ours.state_dict(), hf_cfg, config)
    reference = hf.state_dict()
    assert set(back) == set(reference)
    for key, value in reference.items():
        assert torch.equal(back[key], value), key


def test_gpt2_maps_to_openai_gelu_and_learned_positions() -> None:
    _, cfg = gpt2()
    config = transformer_config_from_hf(cfg)
    assert config.openai_gelu and config.activation == "openai_gelu"
    assert config.position_embedding_type == "learned_absolute" and config.add_bias_linear
    assert not config.bias_activation_fusion


def test_qwen2_maps_to_qkv_bias_only() -> None:
    _, cfg = CASES["qwen2"]()
    config = transformer_config_from_hf(cfg)
    assert config.add_qkv_bias and not config.add_bias_linear and config.num_query_groups == 2


def test_fused_qkv_is_group_major_and_splits_back() -> None:
    d = 2
    q = torch.arange(4 * d).float()[:, None]  # heads 0..3
    k = 100 + torch.arange(2 * d).float()[:, None]
    v = 200 + torch.arange(2 * d).float()[:, None]
    fused = fuse_qkv(q, k, v, num_heads=4, num_groups=2).squeeze(1).tolist()
    assert fused == [0, 1, 2, 3, 100, 101, 200, 201, 4, 5, 6, 7, 102, 103, 202, 203]
    for a, b in zip(split_qkv(fuse_qkv(q, k, v, 4, 2), 4, 2), (q, k, v)):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LlamaConfig(**LLAMA_SIZES, hidden_act="gelu"), "hidden_act"),
        (lambda: LlamaConfig(**LLAMA_SIZES, attention_bias=True), "attention_bias"),
        (
            lambda: LlamaConfig(**LLAMA_SIZES, rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}),
            "dynamic",
        ),
        (lambda: GPT2Config(scale_attn_by_inverse_layer_idx=True), "scaling"),
        (lambda: Qwen2Config(**LLAMA_SIZES, use_sliding_window=True, sliding_window=8), "sliding"),
    ],
)  # fmt: skip
def test_unrepresentable_hf_configs_are_rejected(make, message: str) -> None:
    with pytest.raises(HFMappingError, match=message):
        transformer_config_from_hf(make())
