"""`convert-ckpt --loader core`: resharding the original's torch checkpoints is exact (the
golden TP2 and PP2 files are reproduced bit for bit), the saved args describe the same model,
and golden checkpoints become HF models with our model's logits and the original's loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from gpt_ckpt.legacy_reader import read_all_shards, read_tracker
from gpt_convert_ckpt_app.main import main
from gpt_models.model import GPTModel
from gpt_models.original_args import transformer_config_from_original_args
from gpt_models.original_names import EXTRA_STATE_SUFFIX, load_original_state_dict, to_local_names
from gpt_models.tp_shards import merge_tensor_parallel_shards, tensor_parallel_layout
from transformers import AutoModelForCausalLM


def convert(*flags: str) -> int:
    return main(["--model-type", "GPT", *flags])


def weights(directory: Path) -> dict[tuple[int, int, int], dict[str, torch.Tensor]]:
    """(tp, pp, ep) -> that shard's tensors (local-spec names, no _extra_state)."""
    shards = read_all_shards(directory)
    if next(iter(shards.values())).args.expert_model_parallel_size > 1:
        shards = read_all_shards(directory, expert_parallel=True)
    return {
        (key.tp, key.pp, key.ep): {
            k: v
            for k, v in to_local_names(ckpt.model).items()
            if not k.endswith(EXTRA_STATE_SUFFIX)
        }
        for key, ckpt in shards.items()
    }


def assert_same_weights(ours: Path, theirs: Path) -> None:
    a, b = weights(ours), weights(theirs)
    assert set(a) == set(b)
    for key in a:
        assert set(a[key]) == set(b[key]), key
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


@pytest.mark.parametrize(
    ("case", "flat", "layout"),
    [
        ("llama-tp2", ["--target-tensor-parallel-size", "1"], ["--target-tensor-parallel-size", "2"]),
        ("gpt-pp2", ["--target-pipeline-parallel-size", "1"], ["--target-pipeline-parallel-size", "2"]),
        ("moe-ep2", ["--target-expert-parallel-size", "1"], ["--target-expert-parallel-size", "2"]),
    ],
)  # fmt: skip
def test_resharding_to_one_rank_and_back_reproduces_the_originals_files(
    tmp_path, golden_dir, case, flat, layout
):
    source = golden_dir / "checkpoints" / case
    assert convert("--load-dir", str(source), "--save-dir", str(tmp_path / "one"), *flat) == 0
    assert set(weights(tmp_path / "one")) == {(0, 0, 0)}
    assert (
        convert("--load-dir", str(tmp_path / "one"), "--save-dir", str(tmp_path / "two"), *layout)
        == 0
    )
    assert_same_weights(tmp_path / "two", source)
    assert read_tracker(tmp_path / "two") == (1, False)  # the source's iteration is kept


def test_tensor_parallel_two_and_back_is_the_identity(tmp_path, golden_dir):
    source = golden_dir / "checkpoints" / "llama"
    two, back = tmp_path / "two", tmp_path / "back"
    assert (
        convert(
            "--load-dir", str(source), "--save-dir", str(two), "--target-tensor-parallel-size", "2"
        )
        == 0
    )
    assert set(weights(two)) == {(0, 0, 0), (1, 0, 0)}
    assert (
        convert(
            "--load-dir", str(two), "--save-dir", str(back), "--target-tensor-parallel-size", "1"
        )
        == 0
    )
    assert_same_weights(back, source)


def test_saved_args_describe_the_same_model_and_the_new_layout(tmp_path, golden_dir):
    source = golden_dir / "checkpoints" / "llama-tp2"
    out = tmp_path / "out"
    flags = ["--target-tensor-parallel-size", "1", "--target-pipeline-parallel-size", "2"]
    assert convert("--load-dir", str(source), "--save-dir", str(out), *flags) == 0
    before = read_all_shards(source)
    after = read_all_shards(out)
    assert {(k.tp, k.pp) for k in after} == {(0, 0), (0, 1)}
    old_args = next(iter(before.values())).args
    for ckpt in after.values():
        args = ckpt.args
        assert (args.tensor_model_parallel_size, args.pipeline_model_parallel_size) == (1, 2)
        assert args.padded_vocab_size == 1024 and ckpt.checkpoint_version == 3.0
        assert transformer_config_from_original_args(args) == transformer_config_from_original_args(
            old_args
        )


def our_model(checkpoint: Path) -> GPTModel:
    """Our model with the golden checkpoint's weights: tensor-parallel shards merged by their
    tags, expert-parallel ones (two local experts each) renumbered."""
    shards = read_all_shards(checkpoint)
    args = next(iter(shards.values())).args
    model = GPTModel(
        transformer_config_from_original_args(args, attention_backend="unfused")
    ).eval()
    if args.expert_model_parallel_size > 1:
        state = {}
        for key, ckpt in read_all_shards(checkpoint, expert_parallel=True).items():
            for name, value in to_local_names(ckpt.model).items():
                for local in (0, 1):
                    part = f".local_experts.{local}."
                    name = name.replace(part, f".local_experts.{2 * key.ep + local}.")
                state[name] = value
        load_original_state_dict(model, state)
        return model
    ordered = [to_local_names(shards[key].model) for key in sorted(shards, key=lambda k: k.tp)]
    load_original_state_dict(
        model, merge_tensor_parallel_shards(ordered, tensor_parallel_layout(model))
    )
    return model


@pytest.mark.parametrize(
    ("case", "activation"), [("llama-tp2", None), ("gpt", "gelu"), ("moe-ep2", None)]
)
def test_a_golden_checkpoint_becomes_an_hf_model_with_our_logits_and_the_originals_loss(
    tmp_path, golden_dir, case, activation
):
    source = golden_dir / "checkpoints" / case
    assert (
        convert("--saver", "hf", "--load-dir", str(source), "--save-dir", str(tmp_path / "hf")) == 0
    )
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    if activation:
        assert config["activation_function"] == activation  # exact gelu, no fusion
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    batch = json.loads((golden_dir / "first_batch.json").read_text())
    tokens, labels = torch.tensor(batch["tokens"]), torch.tensor(batch["labels"])
    with torch.no_grad():
        logits = hf(tokens).logits
        ours = our_model(source)(tokens)
        ours = ours[0] if isinstance(ours, tuple) else ours
    assert (logits - ours).abs().max().item() < 1e-4
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten()).item()
    golden = json.loads((golden_dir / f"{case}.json").read_text())
    assert loss == pytest.approx(golden["lm_loss"][0], abs=1e-5)


@pytest.mark.parametrize("fmt", ["torch_dist", "torch_dcp", "zarr"])
def test_a_sharded_format_in_between_changes_no_weight(tmp_path, golden_dir, fmt):
    source = golden_dir / "checkpoints" / "llama-tp2"
    sharded, back = tmp_path / fmt, tmp_path / "back"
    assert convert("--saver", fmt, "--load-dir", str(source), "--save-dir", str(sharded)) == 0
    if fmt != "torch_dcp":  # plain DCP carries no metadata.json
        marker = json.loads((sharded / "iter_0000001" / "metadata.json").read_text())
        assert marker == {"sharded_backend": fmt, "sharded_backend_version": 1}
    assert convert("--loader", fmt, "--load-dir", str(sharded), "--save-dir", str(back)) == 0
    assert_same_weights(back, source)  # the recorded TP2 is the default target


def test_transformer_engine_names_are_written_on_request_and_read_back(tmp_path, golden_dir):
    source = golden_dir / "checkpoints" / "llama"
    te, back = tmp_path / "te", tmp_path / "back"
    flags = ["--saver-transformer-impl", "transformer_engine"]
    assert convert("--load-dir", str(source), "--save-dir", str(te), *flags) == 0
    written = read_all_shards(te)
    model = next(iter(written.values())).model
    assert "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight" in model
    assert next(iter(written.values())).args.transformer_impl == "transformer_engine"
    assert convert("--load-dir", str(te), "--save-dir", str(back)) == 0
    assert_same_weights(back, source)
