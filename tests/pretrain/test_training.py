"""The training loop end to end on one process: the original's own numbers, loss falling,
exact gradient accumulation, precision, batch schedules, exit conditions and logging."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch
from gpt_pretrain_app.main import main
from gpt_pretrain_app.result_checks import ResultChecks, UnexpectedResult

# --------------------------------------------------------------------------- the original


# The golden runs were made with every fusion off (the original's own flags): that is the eager
# reference path. Without those flags, the fusions are on, as by default, and each layer runs
# as a torch.compile region; the lm loss then agrees to rounding, not digit for digit.
EAGER_FLAG = re.compile(r"--no-[a-z-]+-fusion")
COMPILED_LM_LOSS_REL = 5e-5


def golden_run_argv(golden: dict, path: str) -> list[str]:
    """The golden run's flags on the `eager` path, or without its `--no-*-fusion` flags."""
    if path == "eager":
        return list(golden["args"])
    argv = [flag for flag in golden["args"] if not EAGER_FLAG.fullmatch(flag)]
    assert len(golden["args"]) - len(argv) == 6, golden["args"]
    return argv


def printed_fields(lines: list[str]) -> list[tuple[str, str]]:
    """(learning rate, grad norm) of each iteration line, as printed."""
    found = [re.search(r"learning rate: (\S+) .* grad norm: (\S+) ", line) for line in lines]
    return [(match[1], match[2]) for match in found if match]


def masked(line: str) -> str:
    line = re.sub(r"^ \[[0-9: -]+\]", " [TIME]", line)
    line = re.sub(r"elapsed time per iteration \(ms\): [0-9.]+", "elapsed (ms): X", line)
    return re.sub(r"lm loss: \d\.\d{6}E\+00", "lm loss: X", line)  # compared as numbers


@pytest.mark.parametrize("path", ["eager", "compiled"])
@pytest.mark.parametrize("case", ["gpt", "llama"])
def test_golden_run_reproduces_the_original_losses_learning_rates_and_grad_norms(
    case, path, tmp_path, monkeypatch, capsys, pretrain, golden_dir
):
    shutil.copytree(golden_dir, tmp_path / "golden")
    monkeypatch.chdir(tmp_path / "golden")
    golden = json.loads((tmp_path / "golden" / f"{case}.json").read_text())
    if path == "compiled":  # the default: torch.compile on, whatever the caller's environment
        monkeypatch.delenv("GPT_STACK_COMPILE", raising=False)
        monkeypatch.delenv("GPT_STACK_NO_COMPILE", raising=False)
        torch._dynamo.reset()  # compile afresh in this run (inductor's disk cache keeps it short)
        torch._dynamo.utils.counters.clear()
    code, trainer = pretrain(golden_run_argv(golden, path))
    assert code == 0
    history = trainer.history
    assert len(history.lm_loss) == 10
    if path == "compiled":
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
        for ours, theirs in zip(history.lm_loss, golden["lm_loss"], strict=True):
            assert ours == pytest.approx(theirs, rel=COMPILED_LM_LOSS_REL)
    else:
        for ours, theirs in zip(history.lm_loss, golden["lm_loss"], strict=True):
            assert ours == pytest.approx(theirs, abs=2e-6)  # printed with 7 digits
    for ours, theirs in zip(history.learning_rate, golden["learning_rate"], strict=True):
        assert ours == pytest.approx(theirs, rel=1e-6)
    for ours, theirs in zip(history.grad_norm, golden["grad_norm"], strict=True):
        assert ours == pytest.approx(theirs, abs=1e-3)  # printed with 3 decimals

    printed = [line for line in capsys.readouterr().out.splitlines() if " iteration " in line]
    printed = [line for line in printed if "consumed samples" in line]
    assert printed_fields(printed) == printed_fields(golden["log_lines"])
    assert [masked(line) for line in printed] == [masked(line) for line in golden["log_lines"]]


# --------------------------------------------------------------------------- learning


def test_fifty_iterations_on_mock_data_make_the_loss_fall(pretrain, tiny_args, set_flag):
    argv = set_flag(tiny_args, "--train-iters", "50")
    argv = set_flag(argv, "--lr", "5e-3")
    argv = set_flag(argv, "--log-interval", "10")
    code, trainer = pretrain(argv)
    losses = trainer.history.lm_loss
    assert code == 0 and len(losses) == 50
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, (first, last)


def _weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items() if v is not None}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_gradient_accumulation_over_four_micro_batches_equals_one_batch_of_four(
    pretrain, tiny_args, set_flag, optimizer
):
    base = set_flag(tiny_args, "--global-batch-size", "4")
    base = set_flag(base, "--train-iters", "2")
    base = set_flag(base, "--optimizer", optimizer)
    base = set_flag(base, "--hidden-dropout", "0")
    base = set_flag(base, "--attention-dropout", "0")
    _, whole = pretrain(set_flag(base, "--micro-batch-size", "4"))
    _, accumulated = pretrain(set_flag(base, "--micro-batch-size", "1"))
    assert whole.history.lm_loss == pytest.approx(accumulated.history.lm_loss, abs=1e-6)
    a, b = _weights(whole), _weights(accumulated)
    assert a.keys() == b.keys()
    # Adam divides each gradient element by its own magnitude: an element whose gradient is
    # about eps (1e-8) turns summation-order rounding into a visible step, so its weights agree
    # to a few 1e-6; SGD shows the gradients themselves agree to 1e-6.
    tolerance = 1e-6 if optimizer == "sgd" else 5e-6
    for name in a:
        diff = (a[name] - b[name]).abs().max().item()
        assert diff <= tolerance, (name, diff)


def test_per_token_loss_equals_the_mean_loss_when_micro_batches_hold_equal_tokens(
    pretrain, tiny_args, set_flag
):
    base = set_flag(tiny_args, "--hidden-dropout", "0")
    base = set_flag(base, "--attention-dropout", "0")
    _, mean = pretrain(base)
    _, per_token = pretrain(base + ["--calculate-per-token-loss"])
    assert mean.history.lm_loss == pytest.approx(per_token.history.lm_loss, abs=1e-6)
    for name, tensor in _weights(mean).items():
        assert torch.allclose(tensor, _weights(per_token)[name], atol=1e-6), name


def test_full_recomputation_gives_the_same_losses(pretrain, tiny_args, set_flag):
    base = set_flag(tiny_args, "--hidden-dropout", "0")
    base = set_flag(base, "--attention-dropout", "0")
    _, plain = pretrain(base)
    recompute = base + ["--recompute-granularity", "full", "--recompute-method", "uniform"]
    _, recomputed = pretrain(recompute + ["--recompute-num-layers", "1"])
    assert plain.history.lm_loss == pytest.approx(recomputed.history.lm_loss, abs=1e-6)


def test_sgd_and_adam_take_different_steps(pretrain, tiny_args):
    _, adam = pretrain(tiny_args)
    _, sgd = pretrain(tiny_args + ["--optimizer", "sgd", "--sgd-momentum", "0.5"])
    assert adam.history.lm_loss[0] == pytest.approx(sgd.history.lm_loss[0], abs=1e-6)
    assert adam.history.lm_loss[-1] != pytest.approx(sgd.history.lm_loss[-1], abs=1e-4)
    assert isinstance(sgd.optimizer.optimizer, torch.optim.SGD)


# --------------------------------------------------------------------------- precision


def test_bf16_keeps_bf16_weights_and_fp32_main_params_and_learns(pretrain, tiny_args, set_flag):
    argv = set_flag(tiny_args, "--train-iters", "20")
    argv = set_flag(argv, "--lr", "5e-3")
    code, trainer = pretrain(argv + ["--bf16"])
    assert code == 0
    assert {p.dtype for p in trainer.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in trainer.optimizer.get_parameters()} == {torch.float32}
    losses = trainer.history.lm_loss
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_fp16_dynamic_loss_scale_skips_overflowing_iterations_and_backs_off(
    pretrain, tiny_args, set_flag, capsys
):
    argv = set_flag(tiny_args, "--train-iters", "8")
    code, trainer = pretrain(argv + ["--fp16", "--initial-loss-scale", str(2**24)])
    assert code == 0
    skipped = trainer.history.skipped
    assert skipped[0] and skipped[1]  # hysteresis 2: two overflows before the first backoff
    assert not skipped[-1]
    assert trainer.optimizer.get_loss_scale().item() < 2**24
    out = capsys.readouterr().out
    assert "number of skipped iterations:   1 |" in out
    assert trainer.history.grad_norm[0] is None  # a skipped step reports no norm


def test_static_loss_scale_is_constant(pretrain, tiny_args):
    code, trainer = pretrain(tiny_args + ["--fp16", "--loss-scale", "128"])
    assert code == 0
    assert trainer.optimizer.get_loss_scale().item() == 128.0
    assert not any(trainer.history.skipped)


# --------------------------------------------------------------------------- schedules


def test_train_samples_sets_the_iterations_and_the_schedule_ends_at_min_lr(
    pretrain, tiny_args, set_flag
):
    argv = [a for a in tiny_args]
    i = argv.index("--train-iters")
    del argv[i : i + 2]
    argv += ["--train-samples", "24", "--lr-decay-style", "linear", "--min-lr", "1e-4"]
    code, trainer = pretrain(argv)
    assert code == 0
    assert trainer.state.iteration == 6
    assert trainer.state.consumed_train_samples == 24
    assert trainer.history.learning_rate[-1] == pytest.approx(1e-4)


def test_rampup_batch_size_grows_the_global_batch(pretrain, tiny_args, set_flag, capsys):
    argv = set_flag(tiny_args, "--global-batch-size", "8")
    i = argv.index("--train-iters")
    del argv[i : i + 2]
    code, trainer = pretrain(
        argv + ["--train-samples", "36", "--rampup-batch-size", "4", "2", "16"]
    )
    assert code == 0
    sizes = re.findall(r"global batch size: +(\d+) \|", capsys.readouterr().out)
    assert [int(s) for s in sizes] == [4, 4, 6, 6, 8, 8]
    assert trainer.state.consumed_train_samples == 36


def test_decoupled_lr_applies_to_embedding_and_output_layers(pretrain, tiny_args, capsys):
    argv = tiny_args + ["--decoupled-lr", "3e-3", "--untie-embeddings-and-output-weights"]
    code, trainer = pretrain(argv + ["--lr-decay-style", "constant"])
    assert code == 0
    lrs = {group["lr"] for group in trainer.optimizer.param_groups if group["params"]}
    assert lrs == {1e-3, 3e-3}
    assert "decoupled learning rate: 3.000000E-03 |" in capsys.readouterr().out


# --------------------------------------------------------------------------- control flow


def test_exit_interval_stops_training_early(pretrain, tiny_args, capsys):
    code, trainer = pretrain(tiny_args + ["--exit-interval", "2"])
    assert code == 0
    assert trainer.state.iteration == 2
    assert "exiting program at iteration 2" in capsys.readouterr().out


def test_skip_train_only_evaluates(pretrain, tiny_args, capsys):
    code, trainer = pretrain(tiny_args + ["--skip-train"])
    assert code == 0
    assert trainer.state.iteration == 0
    out = capsys.readouterr().out
    assert "validation loss at iteration 0 on validation set" in out
    assert "validation loss at iteration 0 on test set" in out


def test_evaluation_every_interval_prints_the_original_box(pretrain, tiny_args, set_flag, capsys):
    code, trainer = pretrain(set_flag(tiny_args, "--eval-interval", "2"))
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    i = next(i for i, line in enumerate(lines) if "validation loss at iteration 2 |" in line)
    text = lines[i]
    assert re.fullmatch(
        r" validation loss at iteration 2 \| lm loss value: \d\.\d{6}E\+00 \| "
        r"lm loss PPL: \d\.\d{6}E\+\d\d \| ",
        text,
    )
    assert lines[i - 1] == lines[i + 1] == "-" * (len(text) + 1)
    assert [label for label, _ in trainer.history.validation][:2] == [
        "iteration 2",
        "iteration 4",
    ]


def test_log_flags_add_their_fields_to_the_training_line(pretrain, tiny_args, capsys):
    argv = tiny_args + ["--log-throughput", "--log-params-norm", "--log-num-zeros-in-grad"]
    code, _ = pretrain(argv + ["--timing-log-level", "1"])
    assert code == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "iteration        4/" in line)
    assert "| throughput per GPU (TFLOP/s/GPU): " in line
    assert "| num zeros: " in line and "| params norm: " in line
    assert line.index("throughput") < line.index("learning rate")
    assert "(min, max) time across ranks (ms):" in out
    assert "    forward-backward " in out
    assert "    batch-generator " not in out  # a level-2 timer


def test_timing_level_two_with_the_max_option_reports_the_fine_timers(pretrain, tiny_args, capsys):
    argv = tiny_args + ["--timing-log-level", "2", "--timing-log-option", "max"]
    code, _ = pretrain(argv)
    assert code == 0
    out = capsys.readouterr().out
    assert "max time across ranks (ms):" in out
    for name in ("forward-compute", "backward-compute", "batch-generator", "optimizer"):
        assert re.search(rf"    {name} \.+: \d+\.\d\d", out), name


# --------------------------------------------------------------------------- logging


def test_tensorboard_event_files_hold_the_original_tags(pretrain, tiny_args, set_flag, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = set_flag(tiny_args, "--eval-interval", "2")
    argv += ["--tensorboard-dir", str(tmp_path / "tb"), "--log-timers-to-tensorboard"]
    argv += ["--log-memory-to-tensorboard", "--log-params-norm", "--log-num-zeros-in-grad"]
    argv += ["--log-validation-ppl-to-tensorboard", "--log-world-size-to-tensorboard"]
    code, trainer = pretrain(argv)
    assert code == 0
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in [
        "lm loss",
        "lm loss vs samples",
        "learning-rate",
        "learning-rate vs samples",
        "batch-size",
        "loss-scale",
        "grad-norm",
        "num-zeros",
        "params-norm",
        "world-size",
        "iteration-time",
        "mem-allocated-bytes",
        "lm loss validation",
        "lm loss validation vs samples",
        "lm loss validation ppl",
    ]:
        assert tag in tags, tag
    written = [event.value for event in events.Scalars("lm loss")]
    assert written == pytest.approx(trainer.history.lm_loss, rel=1e-6)
    steps = [event.step for event in events.Scalars("lm loss vs samples")]
    assert steps == [4, 8, 12, 16]


def test_wandb_without_the_package_is_a_one_line_error(tiny_args, capsys):
    pytest.importorskip("torch")
    try:
        import wandb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("wandb is installed here")
    assert main(tiny_args + ["--wandb-project", "p"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: --wandb-project needs the wandb package (pip install wandb)"


def test_wandb_runs_offline_and_logs_the_original_tags(pretrain, tiny_args, tmp_path, monkeypatch):
    import sys
    import types

    calls: dict = {"log": []}

    class Run:
        def log(self, values, step):
            calls["log"].append((step, values))

        def finish(self):
            calls["finished"] = True

    def init(**kwargs):
        calls["init"] = kwargs
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    argv = tiny_args + ["--wandb-project", "proj", "--wandb-exp-name", "exp"]
    code, trainer = pretrain(argv + ["--wandb-save-dir", str(tmp_path / "wb")])
    assert code == 0
    init_kwargs = calls["init"]
    assert init_kwargs["mode"] == "offline" and init_kwargs["project"] == "proj"
    assert init_kwargs["name"] == "exp" and init_kwargs["dir"] == str(tmp_path / "wb")
    losses = [(step, v["lm loss"]) for step, v in calls["log"] if "lm loss" in v]
    assert losses == [(i + 1, loss) for i, loss in enumerate(trainer.history.lm_loss)]
    assert calls["finished"]


def test_transformer_engine_default_without_te_runs_the_local_path_with_one_warning(
    pretrain, tiny_args, set_flag, capsys
):
    code, trainer = pretrain(set_flag(tiny_args, "--transformer-impl", "transformer_engine"))
    assert code == 0 and len(trainer.history.lm_loss) == 4
    err = capsys.readouterr().err
    assert err.count("Transformer Engine is not installed") == 1


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            ["--load", "/nonexistent/ckpt", "--finetune", "--exit-on-missing-checkpoint"],
            "--load /nonexistent/ckpt: no checkpoint there",
        ),
        (["--data-path", "/nonexistent/prefix"], "/nonexistent/prefix"),
    ],
)
def test_bad_runs_stop_with_one_line(tiny_args, capsys, extra, message):
    argv = tiny_args
    if "--data-path" in extra:
        argv = [a for a in tiny_args if a != "--mock-data"]
    assert main(argv + extra) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and message in err[0], err


def test_a_missing_checkpoint_warns_and_starts_from_random_weights(pretrain, tiny_args, capsys):
    code, trainer = pretrain(tiny_args + ["--load", "/nonexistent/ckpt", "--finetune"])
    assert code == 0 and trainer.state.iteration == 4
    assert "will not load any checkpoints and will start from random" in capsys.readouterr().err


def test_a_token_id_outside_the_vocabulary_names_the_file(tmp_path, tiny_args, capsys):
    import numpy as np
    from gpt_data.indexed_dataset import IndexedDatasetBuilder

    prefix = str(tmp_path / "corpus")
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=np.uint16)
    for i in range(64):
        builder.add_document(np.array([(i * 7 + j) % 300 for j in range(40)]), [40])
    builder.finalize(prefix + ".idx")
    argv = [a for a in tiny_args if a != "--mock-data"] + [
        "--data-path",
        prefix,
        "--split",
        "100,0,0",
    ]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "corpus.bin" in err[0], err


def test_more_than_one_process_without_torchrun_is_a_one_line_error(tiny_args, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert main(tiny_args) == 2
    assert "WORLD_SIZE > 1 needs torchrun" in capsys.readouterr().err


# --------------------------------------------------------------------------- result checks


def test_nan_loss_stops_with_the_original_message():
    checks = ResultChecks(check_nan=True, check_spiky_loss=False, check_large_grads=False)
    checks.loss(3.0)
    with pytest.raises(UnexpectedResult, match="found NaN in local forward loss calculation"):
        checks.loss(math.nan)
    with pytest.raises(UnexpectedResult, match="found Inf in local forward loss calculation"):
        checks.loss(math.inf)


def test_spiky_loss_is_ten_times_the_max_of_the_first_hundred():
    checks = ResultChecks(check_nan=True, check_spiky_loss=True, check_large_grads=False)
    for i in range(100):
        checks.loss(1.0 + i / 100)  # max 1.99
    checks.loss(19.8)
    with pytest.raises(UnexpectedResult, match="Spiky loss"):
        checks.loss(19.9)


def test_large_grads_are_checked_only_when_asked():
    quiet = ResultChecks(check_nan=False, check_spiky_loss=False, check_large_grads=False)
    loud = ResultChecks(check_nan=False, check_spiky_loss=False, check_large_grads=True)
    for _ in range(100):
        quiet.grads(1.0)
        loud.grads(1.0)
    quiet.grads(100.0)
    with pytest.raises(UnexpectedResult, match="found unexpected large grads"):
        loud.grads(100.0)
