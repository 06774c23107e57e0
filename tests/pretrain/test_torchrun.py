"""`pretrain` launched by torchrun, as users launch it: the original's own tensor-parallel run,
a 4-process run, and layouts that cannot work stopping on every rank with one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRETRAIN = ROOT / "apps" / "pretrain"
LINE = re.compile(r"learning rate: (\S+) .* lm loss: (\S+) .* grad norm: (\S+) ")


def torchrun(
    nproc: int, argv: list[str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node nproc apps/pretrain argv` (a free port each time)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", str(PRETRAIN), *argv]  # fmt: skip
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("case", ["llama-tp2", "gpt-pp2", "gpt-pp2-resume"])
def test_the_originals_parallel_run_is_reproduced_under_torchrun(tmp_path, golden_dir, case):
    """llama-tp2.json: both ranks load their own shard of the original's TP2 checkpoint
    (`mp_rank_00`, `mp_rank_01`); gpt-pp2.json: each pipeline stage its own folder
    (`mp_rank_00_000`, `mp_rank_00_001`), with embeddings tied across the stages. Both with
    --finetune, and both print the original's 10 iterations. gpt-pp2-resume.json: each stage
    resumes the original's PP2 run at iteration 5 (no --finetune) and prints iterations 6-10."""
    shutil.copytree(golden_dir, tmp_path / "golden")
    golden = json.loads((tmp_path / "golden" / f"{case}.json").read_text())
    assert golden["nproc"] == 2
    done = torchrun(2, golden["args"], tmp_path / "golden")
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [LINE.search(line) for line in done.stdout.splitlines() if " iteration " in line]
    printed = [m for m in printed if m]
    assert len(printed) == len(golden["lm_loss"]), done.stdout[-3000:]
    lrs = [float(m[1]) for m in printed]
    losses = [float(m[2]) for m in printed]
    norms = [m[3] for m in printed]
    for ours, theirs in zip(losses, golden["lm_loss"], strict=True):
        assert ours == pytest.approx(theirs, rel=5e-5)
    for ours, theirs in zip(lrs, golden["learning_rate"], strict=True):
        assert ours == pytest.approx(theirs, rel=1e-6)
    assert norms == [f"{n:.3f}" for n in golden["grad_norm"]]
    where = "[ t 1/2, p 1/1 ]" if case == "llama-tp2" else "[ t 1/1, p 1/2 ]"
    assert f"successfully loaded checkpoint from checkpoints/{case} {where}" in done.stdout
    if case == "gpt-pp2-resume":
        assert " iteration        6/      10 |" in done.stdout


TINY = [
    "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "255",
    "--transformer-impl", "local", "--distributed-backend", "gloo",
    "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
    "--seq-length", "64", "--max-position-embeddings", "64", "--num-workers", "0",
    "--micro-batch-size", "2", "--global-batch-size", "8", "--train-iters", "3",
    "--lr", "1e-3", "--log-interval", "1", "--eval-interval", "2", "--eval-iters", "1",
]  # fmt: skip


@pytest.mark.parametrize(
    "flags,sizes",
    [
        (["--tensor-model-parallel-size", "2", "--sequence-parallel",
          "--use-distributed-optimizer", "--overlap-grad-reduce"],
         "data-parallel size: 2, context-parallel size: 1"),
        (["--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2"],
         "data-parallel size: 1, context-parallel size: 1"),
    ],
    ids=["tp2-sp-dp2", "pp2-tp2"],
)  # fmt: skip
def test_four_processes_train_as_a_user_runs_them(tmp_path, flags, sizes):
    done = torchrun(4, TINY + flags, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert f"using world size: 4, {sizes}" in out
    assert out.count(" iteration ") >= 3 and " validation loss at iteration 2 " in out


BAD_LAYOUTS = [
    (2, ["--tensor-model-parallel-size", "3", "--num-attention-heads", "6"],
     "world size (2) is not divisible by --tensor-model-parallel-size"),
    (2, ["--tensor-model-parallel-size", "2", "--num-attention-heads", "3", "--kv-channels", "8"],
     "--num-attention-heads (3) must be divisible by --tensor-model-parallel-size (2)"),
    (2, ["--tensor-model-parallel-size", "2", "--ffn-hidden-size", "33"],
     "--ffn-hidden-size (33) must be divisible by --tensor-model-parallel-size (2)"),
    (4, ["--tensor-model-parallel-size", "4", "--group-query-attention",
         "--num-query-groups", "2"],
     "--num-query-groups (2) must be divisible by --tensor-model-parallel-size (4)"),
    (2, ["--sequence-parallel"], "--sequence-parallel needs --tensor-model-parallel-size > 1"),
    (2, ["--pipeline-model-parallel-size", "2", "--num-layers", "3"],
     "--num-layers (3) must be divisible by --pipeline-model-parallel-size (2)"),
    (2, ["--pipeline-model-parallel-size", "2", "--pipeline-model-parallel-layout", "Et|tt|L"],
     "--pipeline-model-parallel-layout has 3 stages, not a multiple of "
     "--pipeline-model-parallel-size 2"),
]  # fmt: skip
IDS = ["world-size", "heads", "ffn", "query-groups", "sp-without-tp", "pp-layers", "pp-layout"]


@pytest.mark.parametrize(
    "nproc,flags,message", BAD_LAYOUTS[:1] + BAD_LAYOUTS[-1:], ids=IDS[:1] + IDS[-1:]
)
def test_under_torchrun_a_bad_layout_exits_2_with_one_line_and_no_hang(
    tmp_path, nproc, flags, message
):
    """torchrun stops the other ranks once one has failed, so not every rank may get to print."""
    done = torchrun(nproc, TINY + flags, tmp_path, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors and all(message in line for line in errors), done.stderr[-2000:]
    assert "exitcode  : 2" in done.stderr and done.returncode != 0
    assert "gpt_pretrain_app" not in done.stderr  # no rank printed a traceback of ours


def main_on_rank(argv: list[str]) -> tuple[int, list[str]]:
    """`pretrain` in one rank of the harness: its exit code and the lines it wrote to stderr."""
    import contextlib
    import io

    from gpt_pretrain_app.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue().splitlines()


@pytest.mark.parametrize("nproc,flags,message", BAD_LAYOUTS, ids=IDS)
def test_every_rank_of_a_bad_layout_exits_2_with_the_same_one_line(
    run_on_ranks, nproc, flags, message
):
    for code, lines in run_on_ranks(main_on_rank, nproc, TINY + flags, timeout=60):
        assert code == 2
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
