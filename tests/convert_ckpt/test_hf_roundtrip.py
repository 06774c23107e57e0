"""HF model -> `convert-ckpt --saver core` -> pretrain gives the HF model's loss on the same
tokens, and `--saver hf` gives back a directory transformers loads with the same logits."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from gpt_convert_ckpt_app.main import main
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.data_setup import build_datasets_and_iterators
from gpt_pretrain_app.flag_status import guard_flags
from gpt_pretrain_app.run import run
from gpt_pretrain_app.validate import validate_args
from gpt_tokenizers import TokenizerFlags, build_tokenizer
from transformers import (
    AutoModelForCausalLM,
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

CORPUS = "corpus/tiny_text_document"
VOCAB = 1024
"""The corpus' NullTokenizer vocabulary (1001) padded as pretrain pads it, so the HF model and
ours see the same logits (the original's loss runs over the padded vocabulary)."""

RUN = [
    "--distributed-backend", "gloo", "--transformer-impl", "local", "--num-workers", "0",
    "--no-gradient-accumulation-fusion", "--no-masked-softmax-fusion", "--no-bias-gelu-fusion",
    "--no-bias-swiglu-fusion", "--no-bias-dropout-fusion", "--no-persist-layer-norm",
    "--no-rope-fusion",
    "--data-path", CORPUS, "--split", "90,10,0",
    "--tokenizer-type", "NullTokenizer", "--vocab-size", "1000",
    "--num-layers", "2", "--hidden-size", "64", "--num-attention-heads", "4",
    "--seq-length", "32", "--max-position-embeddings", "32",
    "--micro-batch-size", "4", "--global-batch-size", "4",
    "--hidden-dropout", "0", "--attention-dropout", "0", "--seed", "1234",
    "--train-iters", "1", "--lr", "1e-3", "--eval-interval", "1000", "--eval-iters", "1",
    "--ckpt-format", "torch", "--skip-train", "--finetune",
]  # fmt: skip

LLAMA = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32,
    rms_norm_eps=1e-5,
    bos_token_id=0,
    eos_token_id=0,
)
ROPE_FLAGS = [
    "--swiglu", "--normalization", "RMSNorm", "--position-embedding-type", "rope",
    "--disable-bias-linear", "--untie-embeddings-and-output-weights",
    "--group-query-attention", "--num-query-groups", "2", "--ffn-hidden-size", "128",
]  # fmt: skip

FAMILIES = {
    "gpt2": (
        GPT2LMHeadModel,
        lambda: GPT2Config(
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
        ),  # fmt: skip
        ["--openai-gelu"],
    ),
    "llama": (LlamaForCausalLM, lambda: LlamaConfig(**LLAMA), ROPE_FLAGS),
    "mistral": (MistralForCausalLM, lambda: MistralConfig(**LLAMA), ROPE_FLAGS),
    "qwen2": (Qwen2ForCausalLM, lambda: Qwen2Config(**LLAMA), [*ROPE_FLAGS, "--add-qkv-bias"]),
    "mixtral": (
        MixtralForCausalLM,
        lambda: MixtralConfig(**LLAMA, num_local_experts=4, num_experts_per_tok=2),
        [
            *ROPE_FLAGS,
            "--num-experts",
            "4",
            "--moe-router-topk",
            "2",
            "--moe-ffn-hidden-size",
            "128",
            "--rotary-base",
            "1000000",
        ],  # fmt: skip
    ),
}


def hf_model(family: str):
    cls, make_config, _ = FAMILIES[family]
    config = make_config()
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():  # random norms and biases, so every converted tensor matters, and
        for name, param in model.named_parameters():  # weights large enough for a loss far
            if param.dim() == 1:  # from log(vocab), so a misplaced tensor shows in it
                param.normal_(1.0 if "norm" in name or "ln_" in name else 0.0, 0.3)
            else:
                param.normal_(0.0, 0.15)
    return model


def convert(*flags: str) -> int:
    return main(["--model-type", "GPT", *flags])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, golden_dir: Path) -> Path:
    """The golden corpus under ./corpus (its index cache is written next to it)."""
    (tmp_path / "corpus").mkdir()
    for suffix in (".bin", ".idx"):
        shutil.copyfile(golden_dir / f"{CORPUS}{suffix}", tmp_path / f"{CORPUS}{suffix}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPT_STACK_COMPILE", "off")
    return tmp_path


def first_validation_batch(argv: list[str]) -> dict[str, torch.Tensor]:
    """The micro-batch pretrain's `--eval-iters 1` evaluates on (one rank, one micro-batch)."""
    config = validate_args(parse_args(argv), world_size=1)
    flags = TokenizerFlags(
        tokenizer_type=config.tokenizer.tokenizer_type, vocab_size=config.tokenizer.vocab_size
    )
    data = build_datasets_and_iterators(
        config, build_tokenizer(flags), dp_rank=0, dp_size=1, is_build_rank=True, barrier=None
    )
    return next(data.valid[0])


def hf_loss(model, batch: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        logits = model(batch["tokens"]).logits
    losses = F.cross_entropy(
        logits.flatten(0, 1).float(), batch["labels"].flatten(), reduction="none"
    )
    mask = batch["loss_mask"].flatten()
    return float((losses * mask).sum() / mask.sum())


def pretrain_validation_loss(argv: list[str]) -> float:
    trainers: list = []
    assert run(parse_args(argv), guard_flags, trainer_out=trainers) == 0
    validation = trainers[0].history.validation
    losses = validation[0][1] if validation else {}
    return float(losses.get("lm loss", math.nan))  # first pipeline stages hold no loss


def pretrain_on_rank(argv: list[str], workdir: str) -> float:
    os.chdir(workdir)
    os.environ["GPT_STACK_COMPILE"] = "off"
    return pretrain_validation_loss(argv)


def assert_same_logits(hf, directory: Path) -> None:
    back = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").eval()
    x = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = hf(x).logits, back(x).logits
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    ("family", "tp", "pp"),
    [
        ("gpt2", 1, 1),
        pytest.param("llama", 2, 2, marks=pytest.mark.slow),  # four ranks: about 30 s
        ("mistral", 1, 1),
        ("qwen2", 1, 1),
        ("mixtral", 1, 1),
    ],
)
def test_hf_to_core_gives_the_hf_loss_in_pretrain_and_converts_back(
    workdir, run_on_ranks, family, tp, pp
):
    hf = hf_model(family)
    hf.save_pretrained(workdir / "hf")
    assert convert(
        "--loader", "hf", "--saver", "core", "--load-dir", str(workdir / "hf"),
        "--save-dir", str(workdir / "core"), "--target-tensor-parallel-size", str(tp),
        "--target-pipeline-parallel-size", str(pp),
    ) == 0  # fmt: skip
    argv = RUN + FAMILIES[family][2] + ["--load", str(workdir / "core")]
    expected = hf_loss(hf, first_validation_batch(argv))
    if tp * pp == 1:
        losses = [pretrain_validation_loss(argv)]
    else:
        layout = [
            "--tensor-model-parallel-size",
            str(tp),
            "--pipeline-model-parallel-size",
            str(pp),
        ]
        losses = run_on_ranks(pretrain_on_rank, tp * pp, argv + layout, str(workdir), timeout=240)
        losses = [loss for loss in losses if not math.isnan(loss)]
    assert losses
    assert abs(expected - math.log(VOCAB)) > 0.1  # a model that tells tokens apart
    for loss in losses:
        assert loss == pytest.approx(expected, rel=1e-5, abs=1e-5)

    shard_limit = ["--max-shard-size", "100000"] if family == "gpt2" else []
    assert convert(
        "--loader", "core", "--saver", "hf", "--load-dir", str(workdir / "core"),
        "--save-dir", str(workdir / "back"), *shard_limit,
    ) == 0  # fmt: skip
    if shard_limit:
        assert (workdir / "back" / "model.safetensors.index.json").is_file()
    assert_same_logits(hf, workdir / "back")


def test_hf_to_torch_dist_loads_in_pretrain_with_the_hf_loss(workdir):
    hf = hf_model("qwen2")
    hf.save_pretrained(workdir / "hf")
    assert convert(
        "--loader", "hf", "--saver", "torch_dist", "--load-dir", str(workdir / "hf"),
        "--save-dir", str(workdir / "dist"),
    ) == 0  # fmt: skip
    argv = RUN + FAMILIES["qwen2"][2] + ["--load", str(workdir / "dist")]
    argv[argv.index("--ckpt-format") + 1] = "torch_dist"
    expected = hf_loss(hf, first_validation_batch(argv))
    assert pretrain_validation_loss(argv) == pytest.approx(expected, rel=1e-5, abs=1e-5)
