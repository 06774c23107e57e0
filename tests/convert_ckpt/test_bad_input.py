"""Bad input stops `convert-ckpt` with one line and exit code 2, and leaves no output directory
(nor a half-written one beside it); the vocabulary is padded as the original's saver pads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from gpt_ckpt.legacy_reader import read_legacy_checkpoint
from gpt_convert_ckpt_app.main import main
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

SIZES = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=16,
)


def tiny_llama(directory: Path, vocab_size: int = 128) -> Path:
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, **SIZES)).save_pretrained(directory)
    return directory


def convert(*flags: str) -> int:
    return main(["--model-type", "GPT", *flags])


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def assert_nothing_written(save_dir: Path) -> None:
    assert not save_dir.exists()
    assert not [p for p in save_dir.parent.iterdir() if p.name.startswith(f".{save_dir.name}.")]


def test_a_missing_load_dir_is_named(tmp_path, capsys):
    for loader in ("core", "hf"):
        code = convert(
            "--loader", loader, "--load-dir", str(tmp_path / "nope"), "--save-dir", str(tmp_path / "out")
        )  # fmt: skip
        assert code == 2
        assert f"--load-dir {tmp_path / 'nope'} does not exist" in one_error_line(capsys)
        assert_nothing_written(tmp_path / "out")


def test_an_unknown_hf_architecture_is_named(tmp_path, capsys):
    hf = tiny_llama(tmp_path / "hf")
    config = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps(config | {"model_type": "bert"}))
    code = convert("--loader", "hf", "--load-dir", str(hf), "--save-dir", str(tmp_path / "out"))
    assert code == 2
    line = one_error_line(capsys)
    assert "config.json" in line and "model_type 'bert'" in line
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--target-tensor-parallel-size", "3"], "--target-tensor-parallel-size 3 does not divide"),
        (["--target-pipeline-parallel-size", "4"], "--target-pipeline-parallel-size 4 does not divide --num-layers 2"),
        (["--target-expert-parallel-size", "2"], "the model has no experts"),
        (["--true-vocab-size", "500"], "--true-vocab-size 500 exceeds the 128 embedding rows"),
        (["--saver", "fsdp_dtensor"], "--saver 'fsdp_dtensor' is not one of core, hf, torch_dcp, torch_dist, zarr"),
    ],
)  # fmt: skip
def test_sizes_that_do_not_fit_stop_before_anything_is_written(tmp_path, capsys, flags, message):
    hf = tiny_llama(tmp_path / "hf")
    code = convert(
        "--loader", "hf", "--load-dir", str(hf), "--save-dir", str(tmp_path / "out"), *flags
    )
    assert code == 2
    assert message in one_error_line(capsys)
    assert_nothing_written(tmp_path / "out")


def test_a_failure_halfway_leaves_no_output_directory(tmp_path, capsys):
    hf = tiny_llama(tmp_path / "hf")
    weights = load_file(hf / "model.safetensors")
    del weights["model.layers.1.mlp.down_proj.weight"]
    save_file(weights, hf / "model.safetensors", metadata={"format": "pt"})
    for saver in ("core", "hf"):
        code = convert(
            "--loader", "hf", "--saver", saver, "--load-dir", str(hf), "--save-dir", str(tmp_path / "out")
        )  # fmt: skip
        assert code == 2
        assert "model.layers.1.mlp.down_proj.weight" in one_error_line(capsys)
        assert_nothing_written(tmp_path / "out")


def test_a_save_dir_that_holds_files_is_refused(tmp_path, capsys):
    hf = tiny_llama(tmp_path / "hf")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code = convert("--loader", "hf", "--load-dir", str(hf), "--save-dir", str(tmp_path / "out"))
    assert code == 2
    assert "exists and is not an empty directory" in one_error_line(capsys)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_the_vocabulary_is_padded_by_repeating_the_last_row_and_trimmed_back(tmp_path):
    hf = tiny_llama(tmp_path / "hf", vocab_size=100)
    flags = ["--make-vocab-size-divisible-by", "16", "--target-tensor-parallel-size", "2"]
    assert (
        convert(
            "--loader", "hf", "--load-dir", str(hf), "--save-dir", str(tmp_path / "core"), *flags
        )
        == 0
    )
    source = load_file(hf / "model.safetensors")["model.embed_tokens.weight"]
    shards = [read_legacy_checkpoint(tmp_path / "core", tp_rank=r) for r in (0, 1)]
    table = torch.cat([s.model["embedding.word_embeddings.weight"] for s in shards])
    assert table.shape == (128, 32)  # 100 rounded up to 16 x 2
    assert torch.equal(table[:100], source)
    assert torch.equal(table[100:], source[-1].expand(28, -1))
    assert shards[0].args.padded_vocab_size == 128 and shards[0].args.true_vocab_size == 100

    back = tmp_path / "back"
    assert convert("--loader", "core", "--saver", "hf", "--load-dir", str(tmp_path / "core"),
                   "--save-dir", str(back), "--true-vocab-size", "100") == 0  # fmt: skip
    assert json.loads((back / "config.json").read_text())["vocab_size"] == 100
    assert torch.equal(load_file(back / "model.safetensors")["model.embed_tokens.weight"], source)
