"""`--ckpt-format torch_dist` / `torch_dcp`: a resumed run equals the run that never stopped
(weights bit for bit, dropout included) on one rank and on TP2xPP2 with the distributed
optimizer; a checkpoint saved at TP2xPP2xDP2 loads at TP1, TP4, PP4 and DP1 and continues the
same losses; the folder follows the original's layout; damage is reported in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
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
    "--hidden-dropout", "0.1", "--attention-dropout", "0.1", "--ckpt-format", "torch_dist",
]  # fmt: skip
"""test_checkpointing's run in torch_dist: dropout on, so only restored RNG states match. (Kept
here, not imported: the rank workers load this file on its own.)"""


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


FSDP2 = ["--use-torch-fsdp2", "--ckpt-format", "torch_dcp"]
"""torch_dcp under torch FSDP2, the pair the original supports."""


def with_format(argv: list[str], fmt: str) -> list[str]:
    argv = list(argv)
    argv[argv.index("--ckpt-format") + 1] = fmt
    return argv


@pytest.mark.parametrize(
    "fmt,extra",
    [("torch_dist", []), ("zarr", []), ("torch_dcp", []), ("torch_dist", ["--bf16"])],
    ids=["torch_dist", "zarr", "torch_dcp", "torch_dist-bf16"],
)  # fmt: skip
def test_a_resumed_run_equals_the_run_that_never_stopped(tmp_path, fmt, extra):
    """With --bf16 the fp32 main params are state of their own (`fp32_param`)."""
    argv = with_format(RUN, fmt) + extra
    straight = train(list(argv))
    first, second = stop_and_resume(argv, tmp_path / "ckpt")
    assert first.history.lm_loss == straight.history.lm_loss[:5]
    assert second.history.lm_loss == straight.history.lm_loss[5:]
    assert second.history.grad_norm == straight.history.grad_norm[5:]
    expected = weights_of(straight)
    for name, value in weights_of(second).items():
        assert torch.equal(value, expected[name]), name
    mine = straight.optimizer.optimizer.state_dict()["state"]
    theirs = second.optimizer.optimizer.state_dict()["state"]
    assert mine.keys() == theirs.keys()
    for index, state in mine.items():
        assert torch.equal(state["exp_avg_sq"], theirs[index]["exp_avg_sq"]), index


def test_the_folders_follow_the_originals_layout(tmp_path):
    save = tmp_path / "c"
    train(with_format(RUN, "torch_dist") + ["--save", str(save), "--save-interval", "100",
                                            "--train-iters", "3"])  # fmt: skip
    folder = save / "iter_0000003"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".metadata", "__0_0.distcp", "common.pt", "metadata.json"
    ]  # fmt: skip
    assert json.loads((folder / "metadata.json").read_text()) == {
        "sharded_backend": "torch_dist", "sharded_backend_version": 1
    }  # fmt: skip
    assert (save / "latest_checkpointed_iteration.txt").read_text() == "3"
    assert not list(save.glob("*.partial"))
    from gpt_ckpt.global_tensors import global_tensor_shapes, read_common

    shapes = global_tensor_shapes(folder)
    assert shapes["decoder.layers.1.self_attention.linear_qkv.weight"] == (96, 32)
    assert "optimizer.state.exp_avg.decoder.layers.0.mlp.linear_fc1.weight" in shapes
    common = read_common(folder)
    assert common["iteration"] == 3 and common["checkpoint_version"] == 3.0
    assert common["args"].consumed_train_samples == 24


def test_a_damaged_checkpoint_is_named_in_one_line(tmp_path, capsys):
    save = tmp_path / "c"
    train(with_format(RUN, "torch_dist") + ["--save", str(save), "--save-interval", "100",
                                            "--train-iters", "3"])  # fmt: skip
    data = save / "iter_0000003" / "__0_0.distcp"
    data.write_bytes(data.read_bytes()[:100])
    assert main(RUN + ["--load", str(save)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "__0_0.distcp is truncated" in err[0]
    (save / "iter_0000003" / "common.pt").write_bytes(b"garbage")
    assert main(RUN + ["--load", str(save)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "common.pt" in err[0]


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
    "ranks,flags",
    [
        (4, ["--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2",
             "--use-distributed-optimizer"]),
        (2, FSDP2),
        (2, ["--use-megatron-fsdp", "--use-distributed-optimizer", "--ckpt-format",
             "fsdp_dtensor"]),
    ],
    ids=["torch_dist-tp2-pp2-distributed-optimizer", "torch_dcp-fsdp2-dp2",
         "fsdp_dtensor-megatron-fsdp-dp2"],
)  # fmt: skip
def test_resuming_on_several_ranks_is_exact(run_on_ranks, tmp_path, ranks, flags):
    argv = RUN + flags
    for out in run_on_ranks(resume_on_rank, ranks, argv, str(tmp_path / "c"), timeout=300):
        assert out["same_weights"]
        if out["straight"] and out["straight"][0] == out["straight"][0]:  # NaN off the last stage
            assert out["resumed"] == out["straight"][5:]


RESHARD = [
    "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "255",
    "--make-vocab-size-divisible-by", "16", "--transformer-impl", "local",
    "--distributed-backend", "gloo", "--num-layers", "4", "--hidden-size", "32",
    "--num-attention-heads", "4", "--seq-length", "64", "--max-position-embeddings", "64",
    "--num-workers", "0", "--micro-batch-size", "1", "--global-batch-size", "4",
    "--train-iters", "5", "--lr", "1e-3", "--lr-warmup-iters", "1", "--log-interval", "1",
    "--eval-interval", "1000", "--eval-iters", "1", "--seed", "1234", "--swiglu",
    "--use-distributed-optimizer", "--ckpt-format", "torch_dist", "--hidden-dropout", "0",
    "--attention-dropout", "0", "--use-cpu-initialization",
]  # fmt: skip
"""Four layers (for PP4), SwiGLU (the stride-2 fc1), a vocabulary padded alike for TP 1-4, no
dropout (the RNG streams of another layout differ); 2 iterations saved, 3 compared."""


def losses_on_rank(argv: list[str]) -> list[float]:
    return train(list(argv)).history.lm_loss


LAYOUTS = {
    "tp1": (1, []),
    "tp4": (4, ["--tensor-model-parallel-size", "4"]),
    "pp4": (4, ["--pipeline-model-parallel-size", "4"]),
    "dp1": (4, ["--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2"]),
}
"""Where a TP2xPP2xDP2 checkpoint is loaded (ranks, flags)."""


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt,targets", [("torch_dist", ["tp1", "tp4", "pp4", "dp1"]), ("zarr", ["tp1", "pp4"])]
)
def test_a_checkpoint_loads_into_any_other_layout(run_on_ranks, tmp_path, fmt, targets):
    """Saved by TP2xPP2xDP2 with the distributed optimizer (8 ranks); the runs that load it
    continue the losses of the one-rank run that never stopped (layouts train alike)."""
    save = str(tmp_path / "c")
    saving = with_format(RESHARD, fmt) + ["--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size",
                        "2", "--save", save, "--save-interval", "100", "--exit-interval", "2"]  # fmt: skip
    run_on_ranks(losses_on_rank, 8, saving, timeout=300)
    expected = losses_on_rank(RESHARD)[2:]
    for name in targets:
        ranks, flags = LAYOUTS[name]
        argv = RESHARD + flags + ["--load", save]
        if ranks == 1:
            outs = [losses_on_rank(argv)]
        else:
            outs = run_on_ranks(losses_on_rank, ranks, argv, timeout=300)
        losses = next(out for out in outs if out and out[0] == out[0])  # the last stage's
        assert losses == pytest.approx(expected, abs=1e-5), name


def async_resume_on_rank(argv: list[str], save: str) -> dict:
    """Saves at iterations 2 and 4 finish in the background while training goes on; the one
    at 5 (exit) is waited for; resuming from 5 continues exactly."""
    straight = train(list(argv))
    if dist.get_rank() == 0:
        shutil.rmtree(save, ignore_errors=True)
    dist.barrier()
    flags = ["--async-save", "--save", save, "--save-interval", "2", "--exit-interval", "5"]
    train(argv + flags)
    second = train(argv + ["--load", save])
    return {
        "folders": sorted(p.name for p in Path(save).iterdir()),
        "straight": straight.history.lm_loss,
        "resumed": second.history.lm_loss,
        "same_weights": all(
            torch.equal(a, b)
            for a, b in zip(weights_of(straight).values(), weights_of(second).values(), strict=True)
        ),
    }


@pytest.mark.parametrize(
    "worker", [[], ["--use-persistent-ckpt-worker"]], ids=["thread", "persistent"]
)
def test_resuming_from_an_asynchronous_save_is_exact(run_on_ranks, tmp_path, worker):
    flags = ["--use-distributed-optimizer"] + worker
    for out in run_on_ranks(async_resume_on_rank, 2, RUN + flags, str(tmp_path / "c"), timeout=300):
        assert out["folders"] == [
            "iter_0000002", "iter_0000004", "iter_0000005", "latest_checkpointed_iteration.txt"
        ]  # fmt: skip
        assert out["same_weights"] and out["resumed"] == out["straight"][5:]


def save_on_rank(argv: list[str]) -> int:
    return train(list(argv)).state.iteration


@pytest.mark.parametrize("spread", [True, False])
def test_fully_parallel_save_spreads_the_writing_over_data_parallel_ranks(
    run_on_ranks, tmp_path, spread
):
    save = tmp_path / "c"
    flags = ["--save", str(save), "--save-interval", "100", "--train-iters", "3"]
    flags += [] if spread else ["--no-ckpt-fully-parallel-save"]
    assert run_on_ranks(save_on_rank, 2, RUN + flags, timeout=300) == [3, 3]
    sizes = [(save / "iter_0000003" / f"__{r}_0.distcp").stat().st_size for r in range(2)]
    if spread:
        assert min(sizes) > 0.25 * max(sizes)
    else:
        assert sizes[1] < 0.01 * sizes[0]
    loaded = train(RUN + ["--load", str(save), "--train-iters", "3"])  # one rank: DP 2 -> 1
    assert loaded.state.iteration == 3 and loaded.state.consumed_train_samples == 24


def test_a_newer_non_persistent_checkpoint_is_resumed_from(tmp_path):
    save = tmp_path / "c"
    every = ["--non-persistent-save-interval", "3", "--non-persistent-ckpt-type", "global"]
    straight = train(list(RUN))
    train(RUN + every + ["--save", str(save), "--save-interval", "4", "--exit-interval", "7"])
    assert sorted(p.name for p in (save / "non_persistent").iterdir()) == [
        "iter_0000006", "latest_checkpointed_iteration.txt"
    ]  # fmt: skip
    shutil.rmtree(save / "iter_0000007")  # as if the run had died before its exit save
    (save / "latest_checkpointed_iteration.txt").write_text("4")
    resumed = train(
        RUN + every + ["--save", str(save), "--save-interval", "4", "--load", str(save)]
    )
    assert resumed.history.lm_loss == straight.history.lm_loss[6:]


@pytest.fixture(scope="module")
def two_layer_checkpoint(tmp_path_factory) -> Path:
    save = tmp_path_factory.mktemp("strict") / "c"
    train(RUN + ["--save", str(save), "--save-interval", "100", "--train-iters", "3"])
    return save


def with_layers(argv: list[str], layers: int) -> list[str]:
    argv = list(argv)
    argv[argv.index("--num-layers") + 1] = str(layers)
    return argv


@pytest.mark.parametrize(
    "layers,strictness,outcome",
    [
        (3, "assume_ok_unexpected", "holds none of decoder.layers.2."),
        (3, "raise_all", "holds none of decoder.layers.2."),
        (3, "log_all", "WARNING: "),
        (1, "assume_ok_unexpected", None),
        (1, "raise_unexpected", "keys no rank of this run loads: decoder.layers.1."),
        (1, "log_unexpected", "WARNING: "),
    ],
)
def test_dist_ckpt_strictness_decides_about_missing_and_unexpected_keys(
    two_layer_checkpoint, capsys, layers, strictness, outcome
):
    save = two_layer_checkpoint
    argv = with_layers(RUN, layers) + ["--load", str(save), "--finetune", "--train-iters", "3"]
    capsys.readouterr()
    code = main(argv + ["--dist-ckpt-strictness", strictness])
    captured = capsys.readouterr()
    if outcome is None:
        assert code == 0 and "WARNING: " not in captured.out
    elif outcome.startswith("WARNING"):
        assert code == 0 and outcome in captured.out
    else:
        err = captured.err.strip().splitlines()
        assert code == 2 and len(err) == 1 and outcome in err[0]
