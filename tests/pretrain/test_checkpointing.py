"""`--save` and resuming with `--load` in the original's `--ckpt-format torch` layout: the
original's own resumed run is reproduced, a run stopped and resumed equals the run that never
stopped (weights bit for bit, dropout and data position included), on one rank and on
tensor- and pipeline-parallel layouts, and the files follow the original's contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from gpt_ckpt.legacy_reader import read_legacy_checkpoint
from gpt_ckpt.legacy_writer import write_shard
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.flag_status import guard_flags
from gpt_pretrain_app.main import main
from gpt_pretrain_app.pipeline_setup import ModelChunks, global_named_parameters
from gpt_pretrain_app.run import run

RUN = [
    "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "255",
    "--transformer-impl", "local", "--distributed-backend", "gloo",
    "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
    "--seq-length", "64", "--max-position-embeddings", "64", "--num-workers", "0",
    "--micro-batch-size", "2", "--global-batch-size", "8", "--train-iters", "10",
    "--lr", "1e-3", "--lr-warmup-iters", "2", "--lr-decay-style", "cosine",
    "--log-interval", "1", "--eval-interval", "1000", "--eval-iters", "1", "--seed", "1234",
    "--hidden-dropout", "0.1", "--attention-dropout", "0.1", "--ckpt-format", "torch",
]  # fmt: skip
"""Dropout on, so a resumed run matches only if the RNG states are restored."""


def train(argv: list[str]):
    trainers: list = []
    assert run(parse_args(argv), guard_flags, trainer_out=trainers) == 0
    return trainers[0]


def weights_of(trainer) -> dict[str, torch.Tensor]:
    model = trainer.model
    named = global_named_parameters(model) if isinstance(model, ModelChunks) else None
    return {name: p.detach().clone() for name, p in named or model.named_parameters()}


def stop_and_resume(argv: list[str], save: Path) -> tuple[object, object]:
    """Train to iteration 5 and save (--exit-interval), then resume to 10 from the save."""
    first = train(argv + ["--save", str(save), "--save-interval", "100", "--exit-interval", "5"])
    second = train(argv + ["--load", str(save)])
    return first, second


def test_the_originals_resumed_run_is_reproduced(tmp_path, monkeypatch, golden_dir, capsys):
    """llama-resume.json: the original saved at iteration 5 (model, Adam state, scheduler, RNG,
    consumed samples); loading it without --finetune prints its iterations 6-10."""
    shutil.copytree(golden_dir, tmp_path / "golden")
    monkeypatch.chdir(tmp_path / "golden")
    golden = json.loads(Path("llama-resume.json").read_text())
    trainer = train(list(golden["args"]))
    history = trainer.history
    assert golden["iterations"] == [6, 7, 8, 9, 10] and len(history.lm_loss) == 5
    for ours, theirs in zip(history.lm_loss, golden["lm_loss"], strict=True):
        assert ours == pytest.approx(theirs, abs=2e-6)
    for ours, theirs in zip(history.learning_rate, golden["learning_rate"], strict=True):
        assert ours == pytest.approx(theirs, rel=1e-6)
    assert [f"{n:.3f}" for n in history.grad_norm] == [f"{n:.3f}" for n in golden["grad_norm"]]
    assert trainer.state.consumed_train_samples == 80
    assert "iteration        6/      10 |" in capsys.readouterr().out


def test_a_stopped_and_resumed_run_equals_the_run_that_never_stopped(tmp_path):
    straight = train(list(RUN))
    first, second = stop_and_resume(list(RUN), tmp_path / "ckpt")
    assert first.history.lm_loss == straight.history.lm_loss[:5]
    assert second.history.lm_loss == straight.history.lm_loss[5:]
    assert second.history.grad_norm == straight.history.grad_norm[5:]
    expected = weights_of(straight)
    for name, value in weights_of(second).items():
        assert torch.equal(value, expected[name]), name
    # Resumed Adam state: the optimizers hold the same moments.
    assert second.optimizer.state_dict()["state"].keys() == (
        straight.optimizer.state_dict()["state"].keys()
    )


def test_the_files_follow_the_originals_contract(tmp_path):
    save = tmp_path / "ckpt"
    trainer = train(RUN + ["--save", str(save), "--save-interval", "4", "--train-iters", "6"])
    assert (save / "latest_checkpointed_iteration.txt").read_text() == "6"
    assert sorted(p.name for p in save.iterdir()) == [
        "iter_0000004", "iter_0000006", "latest_checkpointed_iteration.txt"
    ]  # fmt: skip
    assert [p.name for p in (save / "iter_0000006").iterdir()] == ["mp_rank_00"]
    assert [p.name for p in (save / "iter_0000006" / "mp_rank_00").iterdir()] == [
        "model_optim_rng.pt"
    ]
    checkpoint = read_legacy_checkpoint(save)
    raw = checkpoint.raw
    assert sorted(raw) == sorted([
        "args", "checkpoint_version", "iteration", "model", "optimizer", "opt_param_scheduler",
        "rng_state", "num_floating_point_operations_so_far",
    ])  # fmt: skip
    assert raw["checkpoint_version"] == 3.0 and raw["iteration"] == 6
    assert raw["args"].consumed_train_samples == 48 and raw["args"].num_layers == 2
    assert set(raw["model"]) == set(trainer.model.state_dict())
    assert "decoder.layers.0.self_attention.linear_qkv._extra_state" in raw["model"]
    assert sorted(raw["rng_state"][0]) == [
        "cuda_rng_state", "np_rng_state", "random_rng_state", "rng_tracker_states",
        "torch_rng_state",
    ]  # fmt: skip
    lean = tmp_path / "lean"
    train(RUN + ["--save", str(lean), "--save-interval", "100", "--train-iters", "3",
                 "--no-save-optim", "--no-save-rng"])  # fmt: skip
    assert "optimizer" not in read_legacy_checkpoint(lean).raw
    assert "rng_state" not in read_legacy_checkpoint(lean).raw


def test_a_failed_write_leaves_no_file_behind(tmp_path, monkeypatch):
    target = tmp_path / "iter_0000001" / "mp_rank_00" / "model_optim_rng.pt"

    def broken(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        write_shard(target, {"iteration": 1})
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--use-torch-fsdp2"], "--save with --use-torch-fsdp2 / --use-megatron-fsdp needs"),
    ],
)
def test_what_cannot_be_saved_yet_stops_before_training(tmp_path, capsys, extra, message):
    assert main(RUN + ["--save", str(tmp_path / "c"), "--save-interval", "5"] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "c").exists()


def resume_on_rank(argv: list[str], save: str) -> dict:
    straight = train(list(argv))
    if dist.get_rank() == 0:
        shutil.rmtree(save, ignore_errors=True)
    dist.barrier()
    _, second = stop_and_resume(list(argv), Path(save))
    return {
        "straight": straight.history.lm_loss,
        "resumed": second.history.lm_loss,
        "same_weights": all(
            torch.equal(a, b)
            for a, b in zip(weights_of(straight).values(), weights_of(second).values(), strict=True)
        ),
    }


@pytest.mark.parametrize(
    "flags",
    [
        ["--tensor-model-parallel-size", "2"],
        ["--pipeline-model-parallel-size", "2"],
        [],
        ["--use-distributed-optimizer", "--overlap-grad-reduce", "--overlap-param-gather"],
    ],
    ids=["tp2", "pp2", "dp2", "dp2-distributed-optimizer"],
)
def test_resuming_on_two_ranks_equals_the_run_that_never_stopped(run_on_ranks, tmp_path, flags):
    """With the distributed optimizer each data-parallel rank's shard of the Adam state goes
    to `distrib_optim.pt` beside the model file and comes back to the same rank."""
    for out in run_on_ranks(resume_on_rank, 2, RUN + flags, str(tmp_path / "c"), timeout=240):
        assert out["same_weights"]
        if out["straight"] and out["straight"][0] == out["straight"][0]:  # NaN off the last stage
            assert out["resumed"] == out["straight"][5:]


def save_on_rank(argv: list[str]) -> int:
    return train(list(argv)).state.iteration


def test_a_distributed_optimizer_state_of_another_layout_is_refused_in_one_line(
    run_on_ranks, tmp_path, capsys
):
    save = tmp_path / "c"
    flags = ["--use-distributed-optimizer", "--save", str(save), "--save-interval", "100",
             "--train-iters", "3"]  # fmt: skip
    assert run_on_ranks(save_on_rank, 2, RUN + flags, timeout=240) == [3, 3]
    assert (save / "iter_0000003" / "mp_rank_00" / "distrib_optim.pt").is_file()
    code = main(RUN + ["--use-distributed-optimizer", "--load", str(save)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "saved by 2 data-parallel ranks, this run has 1" in err[0]


def test_retention_keeps_multiples_of_the_interval_and_the_latest(tmp_path):
    save = tmp_path / "c"
    train(RUN + ["--save", str(save), "--save-interval", "2", "--save-retain-interval", "4",
                 "--train-iters", "7"])  # fmt: skip
    assert sorted(p.name for p in save.glob("iter_*")) == ["iter_0000004", "iter_0000007"]
    assert (save / "latest_checkpointed_iteration.txt").read_text() == "7"


def test_ckpt_step_loads_an_earlier_iteration(tmp_path, capsys):
    save = tmp_path / "c"
    train(RUN + ["--save", str(save), "--save-interval", "2", "--train-iters", "4"])
    resumed = train(RUN + ["--load", str(save), "--ckpt-step", "2", "--train-iters", "4"])
    assert len(resumed.history.lm_loss) == 2  # iterations 3 and 4
    assert "loading checkpoint from" in capsys.readouterr().out


def test_a_folder_that_is_no_checkpoint_is_named_in_one_line(tmp_path, capsys):
    (tmp_path / "c" / "iter_0000001").mkdir(parents=True)
    (tmp_path / "c" / "iter_0000001" / "metadata.json").write_text("{}")
    (tmp_path / "c" / "latest_checkpointed_iteration.txt").write_text("1")
    code = main(RUN + ["--load", str(tmp_path / "c"), "--auto-detect-ckpt-format"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "metadata.json is corrupt" in err[0]
