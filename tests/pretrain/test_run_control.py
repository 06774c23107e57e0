"""Run control around checkpoints: `--use-checkpoint-args`, `--exit-signal-handler` (SIGTERM saves,
then exits 0), `--log-progress` (progress.txt), and crash safety (SIGKILL during saves never
leaves a latest checkpoint that does not load)."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from gpt_ckpt.legacy_reader import list_shards, read_legacy_checkpoint, read_tracker
from gpt_pretrain_app.checkpoint_args import apply_checkpoint_args
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.main import main
from gpt_pretrain_app.progress_log import PROGRESS_FILENAME

from .conftest import TINY, train

APP = Path(__file__).resolve().parents[2] / "apps" / "pretrain"
ARCHITECTURE = {
    "--num-layers": 1, "--hidden-size": 1, "--num-attention-heads": 1, "--swiglu": 0,
    "--normalization": 1, "--position-embedding-type": 1, "--disable-bias-linear": 0,
    "--untie-embeddings-and-output-weights": 0, "--group-query-attention": 0,
    "--num-query-groups": 1, "--ffn-hidden-size": 1,
}  # fmt: skip
"""The llama golden run's architecture flags and how many values each takes."""


def without_architecture(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ARCHITECTURE:
            i += 1 + ARCHITECTURE[argv[i]]
            continue
        out.append(argv[i])
        i += 1
    return out


def test_the_architecture_comes_from_the_originals_checkpoint(
    tmp_path, monkeypatch, golden_dir, capsys
):
    """llama.json without its architecture flags, with --use-checkpoint-args: the original's
    saved args give the model back, and the run prints the original's losses."""
    shutil.copytree(golden_dir, tmp_path / "golden")
    monkeypatch.chdir(tmp_path / "golden")
    golden = json.loads(Path("llama.json").read_text())
    argv = without_architecture(list(golden["args"])) + ["--use-checkpoint-args"]
    assert "--num-layers" not in argv and "--swiglu" not in argv
    code, trainer = train(argv)
    assert code == 0
    for ours, theirs in zip(trainer.history.lm_loss, golden["lm_loss"], strict=True):
        assert ours == pytest.approx(theirs, abs=2e-6)
    out = capsys.readouterr().out
    assert "Setting num_layers to 2 from checkpoint" in out
    assert "Setting swiglu to True from checkpoint" in out


def test_layout_and_tokenizer_follow_their_own_flags(golden_dir):
    load = str(golden_dir / "checkpoints" / "llama-tp2")
    base = ["--load", load, "--use-checkpoint-args", "--tokenizer-type", "GPT2BPETokenizer"]
    lines: list[str] = []
    args = apply_checkpoint_args(parse_args(base), lines.append)
    assert args.tensor_model_parallel_size == 1  # the layout only with the mp flag
    assert args.tokenizer_type == "NullTokenizer"  # forced from the checkpoint
    args = apply_checkpoint_args(
        parse_args(base + ["--use-mp-args-from-checkpoint-args"]), lines.append
    )
    assert args.tensor_model_parallel_size == 2
    args = apply_checkpoint_args(
        parse_args(base + ["--no-use-tokenizer-model-from-checkpoint-args"]), lines.append
    )
    assert args.tokenizer_type == "GPT2BPETokenizer"
    explicit = apply_checkpoint_args(parse_args(base + ["--num-layers", "7"]), lines.append)
    assert explicit.num_layers == 7  # not forced: the command line wins
    parsed = parse_args(base)
    apply_checkpoint_args(parsed, lines.append)
    assert parsed.num_layers is None  # the parsed flags are not changed in place


def test_checkpoint_args_without_a_checkpoint_is_one_line(capsys):
    code = main(TINY + ["--use-checkpoint-args"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        "error: --use-checkpoint-args needs --load or --pretrained-checkpoint"
    ]


def test_sigterm_saves_then_exits_zero_and_the_run_resumes(tmp_path):
    """--exit-signal-handler: SIGTERM in the middle of a run saves the current iteration, logs
    the original's line and exits 0; --log-progress wrote the job's start and the save."""
    save = tmp_path / "ckpt"
    argv = TINY + [
        "--train-iters", "400", "--save", str(save), "--save-interval", "1000",
        "--exit-signal-handler", "--log-progress", "--ckpt-format", "torch",
    ]  # fmt: skip
    env = dict(os.environ, GPT_STACK_COMPILE="off")
    process = subprocess.Popen(
        [sys.executable, str(APP), *argv],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr").open("w"),
        text=True,
        env=env,
    )
    try:
        for line in process.stdout:
            if "] iteration        3/" in line:
                break
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, (tmp_path / "stderr").read_text()[-2000:]
    assert "exiting program after receiving SIGTERM." in out
    iteration, _ = read_tracker(save)
    assert iteration >= 3
    assert read_legacy_checkpoint(save).iteration == iteration
    progress = (save / PROGRESS_FILENAME).read_text().splitlines()
    assert progress[0].split("\t")[1:] == ["Job ID: ", "# GPUs: 1", "Starting job"]
    saved = progress[1].split("\t")
    assert saved[3:5] == ["Saved checkpoint", f"Iteration: {iteration}"]
    assert saved[5].startswith("Job throughput: ") and saved[5].endswith(" TFLOP/s/GPU")
    assert saved[8] == f"Tokens (in billions): {iteration * 4 * 64 / 1e9:.2f}"
    code, resumed = train(
        TINY + ["--load", str(save), "--train-iters", "400", "--exit-interval", str(iteration + 2)]
    )
    assert code == 0 and len(resumed.history.lm_loss) == 2


SAVE_FOREVER = """
import os, sys
os.environ["GPT_STACK_COMPILE"] = "off"
sys.stdout = open(os.devnull, "w")
from gpt_pretrain_app.main import main
main({argv!r})
"""
"""What each killed process runs. It starts from the test harness's forkserver (torch already
imported, no threads started), not by forking this process, whose thread pools a fork could
inherit locked."""


def test_sigkill_during_saves_always_leaves_a_loadable_latest_checkpoint(tmp_path):
    """20 runs that save every iteration, each killed with SIGKILL at a random moment: after
    every kill, the tracker names a checkpoint whose every file loads, and the next run resumes
    from it."""
    save = tmp_path / "ckpt"
    argv = TINY + [
        "--train-iters", "400", "--save", str(save), "--save-interval", "1",
        "--save-retain-interval", "4", "--load", str(save), "--ckpt-format", "torch",
        "--log-interval", "1000",
    ]  # fmt: skip
    forkserver = multiprocessing.get_context("forkserver")
    # The harness's preload (tests/conftest.py), in case this test starts the server first.
    forkserver.set_forkserver_preload(["__main__", "pytest", "numpy", "torch", "torch._dynamo"])
    rng = random.Random(0)
    tracker = save / "latest_checkpointed_iteration.txt"
    resumed_from = []
    for _ in range(20):
        before = tracker.read_text() if tracker.exists() else None
        child = forkserver.Process(target=exec, args=(SAVE_FOREVER.format(argv=argv),))
        child.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.is_alive():
            if tracker.exists() and tracker.read_text() != before:
                break  # this run has saved: kill it somewhere in the saves that follow
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
        iteration, _ = read_tracker(save)
        checkpoint = read_legacy_checkpoint(save)
        assert checkpoint.iteration == iteration
        for path in list_shards(save / f"iter_{iteration:07d}").values():
            torch.load(path, map_location="cpu", weights_only=False)
        resumed_from.append(iteration)
    assert resumed_from == sorted(resumed_from) and resumed_from[-1] >= 20


@pytest.mark.parametrize("fmt", ["torch_dist", "torch_dcp"])
def test_checkpoint_args_come_from_a_sharded_checkpoints_common_state(tmp_path, fmt):
    save = tmp_path / "c"
    code, _ = train(TINY + ["--train-iters", "1", "--save", str(save), "--save-interval", "1",
                            "--ckpt-format", fmt, "--swiglu"])  # fmt: skip
    assert code == 0
    lines: list[str] = []
    args = apply_checkpoint_args(
        parse_args(["--load", str(save), "--use-checkpoint-args", "--mock-data"]), lines.append
    )
    assert (args.num_layers, args.hidden_size, args.swiglu) == (2, 32, True)


def test_pretrained_checkpoint_finetunes_when_load_holds_none(tmp_path, capsys):
    """--pretrained-checkpoint: with no checkpoint in --load, the weights come from it and the
    run starts at iteration 0 (the original's finetune); a checkpoint in --load wins."""
    pretrained, load = tmp_path / "pretrained", tmp_path / "load"
    code, source = train(TINY + ["--save", str(pretrained), "--save-interval", "4",
                                 "--ckpt-format", "torch"])  # fmt: skip
    assert code == 0
    argv = TINY + ["--load", str(load), "--pretrained-checkpoint", str(pretrained),
                   "--train-iters", "1"]  # fmt: skip
    code, tuned = train(argv)
    assert code == 0 and tuned.state.iteration == 1  # started at 0, not at 4
    assert "attempting to finetune with checkpoint in" in capsys.readouterr().out
    code, fresh = train(TINY + ["--train-iters", "1"])
    assert tuned.history.lm_loss[0] != fresh.history.lm_loss[0]  # trained weights, not random
    code = main(TINY + ["--pretrained-checkpoint", str(tmp_path / "nothing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--pretrained-checkpoint" in err[0]
