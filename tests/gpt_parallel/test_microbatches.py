"""Number-of-microbatches calculators and the train-iters simulation (reference section 5.4)."""

from __future__ import annotations

import pytest
from gpt_parallel.microbatches import (
    ConstantNumMicroBatchesCalculator,
    RampupBatchsizeNumMicroBatchesCalculator,
    build_num_microbatches_calculator,
    train_iters_for_samples,
)


def test_constant_batch_gives_gbs_over_mbs_times_dp():
    calc = build_num_microbatches_calculator(
        global_batch_size=32, micro_batch_size=2, data_parallel_size=4
    )
    assert isinstance(calc, ConstantNumMicroBatchesCalculator)
    assert calc.get() == 4
    calc.update(10_000)
    assert calc.get() == 4
    assert calc.messages == ["setting number of microbatches to constant 4"]


def test_constant_batch_not_divisible_fails_unless_decreasing_is_allowed():
    with pytest.raises(ValueError, match=r"global batch size \(30\) is not divisible"):
        build_num_microbatches_calculator(30, 2, 4)
    calc = build_num_microbatches_calculator(30, 2, 4, decrease_batch_size_if_needed=True)
    assert (
        calc.get(),
        calc.get_current_global_batch_size(),
        calc.get_current_running_global_batch_size(),
    ) == (3, 30, 24)


def test_rampup_grows_the_batch_by_increments_over_the_samples():
    # START 4, INCR 4, over 24 samples to gbs 16: 3 increments, one every 8 samples.
    calc = build_num_microbatches_calculator(16, 2, 2, rampup_batch_size=[4, 4, 24])
    assert isinstance(calc, RampupBatchsizeNumMicroBatchesCalculator)
    expected = {0: 4, 7: 4, 8: 8, 15: 8, 16: 12, 23: 12, 24: 16, 25: 16, 1000: 16}
    for consumed, gbs in expected.items():
        calc.update(consumed)
        assert calc.get_current_global_batch_size() == gbs, consumed
        assert calc.get() == gbs // 4
    assert calc.messages[:2] == [
        "will use batch size rampup starting from global batch size 4 to global batch size 16 "
        "with batchsize increments 4 over 24 samples.",
        "setting initial batch size to 4",
    ]
    assert "ramping up batch size from 4 to 8" in calc.messages


def test_rampup_batch_not_divisible_fails_or_is_rounded_down():
    calc = build_num_microbatches_calculator(18, 2, 2, rampup_batch_size=[6, 6, 12])
    with pytest.raises(ValueError, match=r"current global batch size \(6\) is not divisible"):
        calc.update(0)
    calc = build_num_microbatches_calculator(
        18, 2, 2, rampup_batch_size=[6, 6, 12], decrease_batch_size_if_needed=True
    )
    calc.update(0)
    assert (
        calc.get_current_global_batch_size(),
        calc.get_current_running_global_batch_size(),
        calc.get(),
    ) == (6, 4, 1)
    calc.update(13)
    assert (
        calc.get_current_global_batch_size(),
        calc.get_current_running_global_batch_size(),
        calc.get(),
    ) == (18, 16, 4)


@pytest.mark.parametrize(
    ("rampup", "gbs", "message"),
    [
        (
            [4, 5, 24],
            16,
            r"interval \(12\) must be divisible by the rampup batch size increment \(5\)",
        ),
        ([32, 4, 24], 16, r"must be >= the rampup start batch size \(32\)"),
        ([4, 4], 16, "expected --rampup-batch-size"),
        ([0, 4, 24], 16, "start batch size should be positive"),
    ],
)
def test_bad_rampup_settings_fail_with_one_line(rampup, gbs, message):
    with pytest.raises(ValueError, match=message):
        build_num_microbatches_calculator(gbs, 1, 1, rampup_batch_size=rampup)


def test_start_equal_to_final_batch_is_a_constant_rampup():
    calc = build_num_microbatches_calculator(16, 2, 2, rampup_batch_size=[16, 4, 100])
    calc.update(50)
    assert calc.get() == 4


def test_zero_rampup_samples_use_the_start_batch_once_then_the_full_batch():
    calc = build_num_microbatches_calculator(16, 1, 1, rampup_batch_size=[4, 4, 0])
    assert calc.get_current_global_batch_size() == 4
    calc.update(4)
    assert calc.get_current_global_batch_size() == 16


def test_train_iters_from_samples_without_rampup_drops_the_partial_batch():
    assert train_iters_for_samples(100, 16, 2, 2) == 6


def _simulate(train_samples, gbs, start, incr, ramp):
    """Section 5.4 by hand: step with the ramp's batch while consumed <= ramp samples."""
    per_increment = ramp / ((gbs - start) // incr)
    consumed = iterations = 0
    while consumed <= ramp:
        consumed += start + int(consumed / per_increment) * incr
        iterations += 1
    return iterations + (train_samples - consumed) // gbs


@pytest.mark.parametrize(
    ("train_samples", "gbs", "rampup"),
    [(100, 16, [4, 4, 24]), (10_000, 64, [8, 8, 1000]), (500, 32, [16, 16, 16])],
)
def test_train_iters_under_rampup_follow_the_simulation(train_samples, gbs, rampup):
    got = train_iters_for_samples(train_samples, gbs, 1, 1, rampup_batch_size=rampup)
    assert got == _simulate(train_samples, gbs, *rampup)


def test_train_iters_under_rampup_worked_example():
    # batches 4, 4, 8, 12 (consumed 4, 8, 16, 28 > 24), then (100 - 28) // 16 = 4 full batches.
    assert train_iters_for_samples(100, 16, 2, 2, rampup_batch_size=[4, 4, 24]) == 8
