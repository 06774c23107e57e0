"""OptimizerParamScheduler against the reference formulas (megatron-reference.md section 5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from gpt_parallel.config import LearningRateConfig, OptimizerConfig
from gpt_parallel.schedules import (
    OptimizerParamScheduler,
    build_scheduler,
    schedule_steps,
)


class Groups:
    """The scheduler only needs ``param_groups``."""

    def __init__(self, *groups: dict) -> None:
        self.param_groups = [dict(g) for g in groups] or [{}]


def reference_lr(n, *, style, max_lr, min_lr, init, warmup, decay, wsd=None, wsd_style=None):
    """Section 5.2, written out independently of the implementation."""
    if warmup > 0 and n <= warmup:
        return init + (max_lr - init) * n / warmup
    if style == "constant":
        return max_lr
    if n > decay:
        return min_lr
    if style == "inverse-square-root":
        return max(min_lr, max_lr * math.sqrt(max(warmup, 1)) / math.sqrt(max(n, 1)))
    r = (n - warmup) / (decay - warmup)
    if style == "linear":
        c = 1 - r
    elif style == "cosine":
        c = 0.5 * (math.cos(math.pi * r) + 1)
    else:
        a = decay - wsd
        if n <= a:
            c = 1.0
        else:
            q = (n - a) / wsd
            c = {
                "linear": 1 - q,
                "cosine": 0.5 * (math.cos(math.pi * q) + 1),
                "exponential": 2 * 0.5**q - 1,
                "minus_sqrt": 1 - math.sqrt(q),
            }[wsd_style]
    return min_lr + c * (max_lr - min_lr)


LR_CASES = [
    # style, wsd_style, max, min, init, warmup, decay, wsd
    ("linear", None, 1e-3, 0.0, 0.0, 0, 96, None),
    ("linear", None, 1e-3, 1e-4, 0.0, 16, 96, None),
    ("cosine", None, 5e-3, 5e-4, 0.0, 16, 80, None),
    ("cosine", None, 2e-3, 1e-4, 5e-4, 12, 96, None),
    ("constant", None, 3e-4, 0.0, 0.0, 8, 96, None),
    ("constant", None, 3e-4, 1e-5, 1e-5, 0, 96, None),
    ("inverse-square-root", None, 1e-3, 1e-5, 0.0, 16, 96, None),
    ("inverse-square-root", None, 1e-3, 0.0, 0.0, 0, 96, None),
    ("cosine", None, 1e-3, 0.0, 0.0, 9.6, 96, None),  # a warmup fraction gives a float span
    ("WSD", "linear", 1e-3, 1e-4, 0.0, 8, 96, 32),
    ("WSD", "cosine", 1e-3, 1e-4, 0.0, 8, 96, 32),
    ("WSD", "exponential", 1e-3, 1e-4, 0.0, 8, 96, 32),
    ("WSD", "minus_sqrt", 1e-3, 1e-4, 0.0, 8, 96, 32),
    ("WSD", "exponential", 1e-3, 0.0, 0.0, 0, 96, 96),
]


@pytest.mark.parametrize(
    ("style", "wsd_style", "max_lr", "min_lr", "init", "warmup", "decay", "wsd"), LR_CASES
)
def test_lr_matches_the_reference_formula_at_every_step(
    style, wsd_style, max_lr, min_lr, init, warmup, decay, wsd
):
    groups = Groups({})
    sched = OptimizerParamScheduler(
        groups,
        init,
        max_lr,
        min_lr,
        warmup,
        decay,
        style,
        0.01,
        0.01,
        decay,
        "constant",
        wsd_decay_steps=wsd,
        lr_wsd_decay_style=wsd_style,
    )
    kwargs = dict(
        style=style,
        max_lr=max_lr,
        min_lr=min_lr,
        init=init,
        warmup=warmup,
        decay=decay,
        wsd=wsd,
        wsd_style=wsd_style,
    )
    assert groups.param_groups[0]["lr"] == pytest.approx(
        reference_lr(0, **kwargs), rel=1e-12, abs=1e-15
    )
    for n in range(4, decay + 24, 4):  # 4 samples per iteration, past the decay span
        sched.step(4)
        expected = reference_lr(n, **kwargs)
        assert groups.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-15), n
        assert sched.num_steps == n


def test_printed_lr_of_the_golden_run_is_lr_of_iteration_times_batch(golden_dir: Path):
    golden = json.loads((golden_dir / "gpt.json").read_text())
    # --train-iters 10 --global-batch-size 8 --lr 5e-3 --min-lr 5e-4 cosine --lr-warmup-iters 2
    config = LearningRateConfig(lr=5e-3, min_lr=5e-4, lr_decay_style="cosine", lr_warmup_iters=2)
    groups = Groups({})
    sched = build_scheduler(groups, config, OptimizerConfig(), global_batch_size=8, train_iters=10)
    for expected in golden["learning_rate"]:
        sched.step(8)
        # The golden file holds the printed value, " learning rate: {lr:.6E}".
        assert f"{groups.param_groups[0]['lr']:.6E}" == f"{expected:.6E}"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("linear", lambda r: 0.0 + r * 0.1),
        ("cosine", lambda r: 0.0 + 0.5 * (math.cos(math.pi * (1 - r)) + 1) * 0.1),
    ],
)
def test_weight_decay_increments_from_start_to_end(style, expected):
    groups = Groups({"wd_mult": 1.0}, {"wd_mult": 0.0})
    sched = OptimizerParamScheduler(groups, 0.0, 1e-3, 0.0, 0, 40, "linear", 0.0, 0.1, 40, style)
    for n in range(0, 60, 4):
        if n:
            sched.step(4)
        r = min(n, 40) / 40
        assert groups.param_groups[0]["weight_decay"] == pytest.approx(expected(r), abs=1e-15)
        assert groups.param_groups[1]["weight_decay"] == 0.0


def test_constant_weight_decay_is_scaled_by_each_groups_wd_mult():
    groups = Groups({"wd_mult": 1.0}, {"wd_mult": 0.0}, {})
    OptimizerParamScheduler(groups, 0.0, 1e-3, 0.0, 0, 40, "linear", 0.05, 0.05, 40, "constant")
    assert [g["weight_decay"] for g in groups.param_groups] == [0.05, 0.0, 0.05]


def test_group_max_and_min_lr_and_lr_mult_override_the_scheduler():
    groups = Groups(
        {},
        {"max_lr": 1e-2, "min_lr": 1e-3},  # a --decoupled-lr group
        {"lr_mult": 0.5},
    )
    sched = OptimizerParamScheduler(
        groups, 0.0, 1e-3, 1e-4, 0, 40, "linear", 0.0, 0.0, 40, "constant"
    )
    sched.step(20)
    assert groups.param_groups[0]["lr"] == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))
    assert groups.param_groups[1]["lr"] == pytest.approx(1e-3 + 0.5 * (1e-2 - 1e-3))
    assert groups.param_groups[2]["lr"] == pytest.approx(0.5 * (1e-4 + 0.5 * (1e-3 - 1e-4)))


def _scheduler(groups=None, **overrides):
    kwargs = dict(
        init_lr=0.0,
        max_lr=1e-3,
        min_lr=1e-5,
        lr_warmup_steps=8,
        lr_decay_steps=64,
        lr_decay_style="cosine",
        start_wd=0.01,
        end_wd=0.01,
        wd_incr_steps=64,
        wd_incr_style="constant",
        use_checkpoint_opt_param_scheduler=False,
        override_opt_param_scheduler=False,
    )
    kwargs.update(overrides)
    return OptimizerParamScheduler(groups or Groups({}), **kwargs)


def test_state_dict_has_the_originals_keys_and_resumes_the_step_count():
    sched = _scheduler()
    sched.step(24)
    state = sched.state_dict()
    assert set(state) == {
        "max_lr",
        "lr_warmup_steps",
        "num_steps",
        "lr_decay_style",
        "lr_decay_steps",
        "min_lr",
        "start_wd",
        "end_wd",
        "wd_incr_style",
        "wd_incr_steps",
    }
    groups = Groups({})
    resumed = _scheduler(groups)
    resumed.load_state_dict(state)
    assert resumed.num_steps == 24
    assert groups.param_groups[0]["lr"] == pytest.approx(sched.get_lr({}))


def test_loading_a_checkpoint_with_other_values_fails_without_override_or_use_checkpoint():
    state = _scheduler(max_lr=2e-3).state_dict()
    with pytest.raises(ValueError, match=r"learning rate differs from the checkpoint's 0.002"):
        _scheduler().load_state_dict(state)


def test_override_keeps_the_new_values_and_use_checkpoint_takes_the_saved_ones():
    saved = _scheduler(max_lr=2e-3, lr_decay_steps=128)
    saved.step(16)
    state = saved.state_dict()

    overriding = _scheduler(override_opt_param_scheduler=True)
    overriding.load_state_dict(state)
    assert (overriding.max_lr, overriding.lr_decay_steps, overriding.num_steps) == (1e-3, 64, 16)

    taking = _scheduler(use_checkpoint_opt_param_scheduler=True)
    taking.load_state_dict(state)
    assert (taking.max_lr, taking.lr_decay_steps, taking.num_steps) == (2e-3, 128, 16)


def test_old_checkpoint_key_names_still_load():
    state = {
        "start_lr": 1e-3,
        "min_lr": 1e-5,
        "warmup_iter": 8,
        "end_iter": 64,
        "decay_style": "cosine",
        "num_iters": 40,
    }
    sched = _scheduler()
    sched.load_state_dict(state)
    assert sched.num_steps == 40


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr_warmup_steps": 64}, "warmup"),
        ({"lr_decay_steps": 0}, "decay span must be positive"),
        ({"min_lr": 2e-3}, r"--lr \(0.001\) must be >= --min-lr"),
        ({"init_lr": 2e-3}, "--lr-warmup-init"),
        ({"lr_decay_style": "WSD"}, "--lr-wsd-decay-iters"),
        ({"lr_decay_style": "step"}, "--lr-decay-style 'step'"),
        (
            {"override_opt_param_scheduler": True, "use_checkpoint_opt_param_scheduler": True},
            "cannot both",
        ),
    ],
)
def test_inconsistent_settings_fail_with_one_line(overrides, message):
    with pytest.raises(ValueError, match=message):
        _scheduler(**overrides)


def test_iteration_based_steps_are_iterations_times_global_batch():
    steps = schedule_steps(
        global_batch_size=32, train_iters=100, lr_warmup_iters=5, lr_wsd_decay_iters=10
    )
    assert (
        steps.lr_warmup_steps,
        steps.lr_decay_steps,
        steps.wd_incr_steps,
        steps.wsd_decay_steps,
    ) == (160, 3200, 3200, 320)
    steps = schedule_steps(
        global_batch_size=32, train_iters=100, lr_decay_iters=50, lr_warmup_fraction=0.01
    )
    assert steps.lr_decay_steps == 1600
    assert steps.lr_warmup_steps == pytest.approx(16.0)  # not rounded
    assert steps.wd_incr_steps == 3200


def test_sample_based_steps_are_the_sample_flags():
    steps = schedule_steps(
        global_batch_size=32, train_samples=1000, lr_warmup_samples=40, lr_wsd_decay_samples=100
    )
    assert (
        steps.lr_warmup_steps,
        steps.lr_decay_steps,
        steps.wd_incr_steps,
        steps.wsd_decay_steps,
    ) == (40, 1000, 1000, 100)
    steps = schedule_steps(
        global_batch_size=32, train_samples=1000, lr_decay_samples=800, lr_warmup_fraction=0.1
    )
    assert (steps.lr_warmup_steps, steps.lr_decay_steps) == (pytest.approx(80.0), 800)


def test_neither_train_iters_nor_samples_is_an_error():
    with pytest.raises(ValueError, match="--train-iters or --train-samples"):
        schedule_steps(global_batch_size=8)


def test_rising_weight_decay_needs_start_and_end():
    config = LearningRateConfig(lr=1e-3)
    linear = OptimizerConfig(weight_decay_incr_style="linear")
    with pytest.raises(ValueError, match="--start-weight-decay and --end-weight-decay"):
        build_scheduler(Groups({}), config, linear, global_batch_size=8, train_iters=10)
    rising = OptimizerConfig(
        weight_decay_incr_style="linear", start_weight_decay=0.0, end_weight_decay=0.1
    )
    sched = build_scheduler(Groups({}), config, rising, global_batch_size=8, train_iters=10)
    assert (sched.start_wd, sched.end_wd, sched.wd_incr_steps) == (0.0, 0.1, 80)
