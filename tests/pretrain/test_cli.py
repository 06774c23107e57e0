"""The command line as a user meets it: YAML settings, flag status, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.errors import ArgsError
from gpt_pretrain_app.flag_status import flag_statuses, guard_flags, status_table
from gpt_pretrain_app.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_cfg_supplies_values_and_the_command_line_overrides(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "num_layers: 6\nhidden-size: 128\nlanguage_model:\n  num_attention_heads: 8\n"
        "lr: 0.001\nposition_embedding_type: rope\n"
    )
    args = parse_args(["--yaml-cfg", str(cfg), "--num-layers", "2"])
    assert args.num_layers == 2  # the flag on the line wins
    assert args.hidden_size == 128
    assert args.num_attention_heads == 8  # nested sections are flattened
    assert args.lr == 0.001
    assert args.position_embedding_type == "rope"


@pytest.mark.parametrize(
    "text,message",
    [
        ("num_layerz: 2\n", "unknown setting 'num_layerz'"),
        ("position_embedding_type: sinus\n", "position_embedding_type='sinus' is not one of"),
        ("- a\n- b\n", "must hold a mapping"),
        ("a: [\n", "is not valid YAML"),
    ],
)
def test_bad_yaml_cfg_is_one_line_naming_the_file(tmp_path, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ArgsError) as info:
        parse_args(["--yaml-cfg", str(cfg)])
    assert message in str(info.value) and str(cfg) in str(info.value)


def test_missing_yaml_cfg_names_the_path():
    with pytest.raises(ArgsError, match="--yaml-cfg: cannot read /no/such.yaml"):
        parse_args(["--yaml-cfg", "/no/such.yaml"])


def test_unknown_flag_and_bad_value_are_one_line_errors():
    with pytest.raises(ArgsError, match="unrecognized arguments: --no-such-flag"):
        parse_args(["--no-such-flag"])
    with pytest.raises(ArgsError, match="argument --num-layers: invalid int value: 'two'"):
        parse_args(["--num-layers", "two"])


def test_flag_status_counts_add_up_to_every_flag():
    rows = flag_statuses()
    assert len(rows) == 513
    table = status_table()
    last = table.strip().splitlines()[-1]
    assert last.startswith("513 flags:")
    numbers = [int(part.split()[0]) for part in last.split(":", 1)[1].split(",")]
    assert sum(numbers) == 513
    assert all(r.reason for r in rows if r.status in ("needs GPU", "no effect in GPT pretraining"))


def test_a_flag_that_does_not_act_yet_is_refused_not_ignored():
    not_implemented = next(r for r in flag_statuses() if r.status == "not implemented yet")
    assert not_implemented.flag
    with pytest.raises(ArgsError, match="--ckpt-fully-parallel-load is not implemented yet"):
        guard_flags(parse_args(["--ckpt-fully-parallel-load"]), cuda_available=False)


def test_a_gpu_only_flag_names_what_it_needs():
    with pytest.raises(ArgsError, match="--enable-cuda-graph needs a GPU: CUDA graphs"):
        guard_flags(parse_args(["--enable-cuda-graph"]), cuda_available=False)


def test_a_flag_without_meaning_for_gpt_warns_once():
    said: list[str] = []
    guard_flags(parse_args(["--mask-prob", "0.3"]), cuda_available=False, warn=said.append)
    assert said == [
        "warning: --mask-prob has no effect in GPT pretraining: BERT/T5 masked-language-model data only"
    ]


def test_a_deprecated_flag_is_judged_by_its_replacement():
    """--model-parallel-size is --tensor-model-parallel-size (effective): accepted, mapped."""
    from gpt_pretrain_app.validate import validate_args

    args = parse_args(["--model-parallel-size", "2", "--num-layers", "2", "--hidden-size", "32",
                       "--num-attention-heads", "4", "--seq-length", "32",
                       "--max-position-embeddings", "32", "--micro-batch-size", "1",
                       "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "99",
                       "--train-iters", "1", "--lr", "1e-3"])  # fmt: skip
    warnings: list[str] = []
    guard_flags(args, cuda_available=False, warn=warnings.append)
    assert warnings == []
    config = validate_args(args, world_size=2)
    assert config.distributed.tensor_model_parallel_size == 2
    assert any("--model-parallel-size is deprecated" in w for w in config.warnings)


def test_main_prints_one_error_line_and_exits_2(capsys):
    assert main(["--num-layers", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_flag_status_command_prints_the_table(capsys):
    assert main(["--flag-status"]) == 0
    assert "513 flags:" in capsys.readouterr().out


def test_the_app_runs_from_its_folder_with_help():
    env = dict(os.environ, COLUMNS="200")
    out = subprocess.run(
        [sys.executable, str(ROOT / "apps" / "pretrain"), "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--num-layers NUM_LAYERS" in out.stdout and "--yaml-cfg" in out.stdout
