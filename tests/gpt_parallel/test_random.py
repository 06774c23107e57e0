"""Seeding per rank and the named RNG streams (reference section 1.2)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from gpt_parallel.random import (
    DATA_PARALLEL_RNG,
    EXPERT_PARALLEL_RNG,
    MODEL_PARALLEL_RNG,
    RNGStatesTracker,
    get_rng_state,
    rank_seed,
    set_random_seed,
    set_rng_state,
)


def test_rank_seed_adds_100_per_pipeline_stage_and_10_per_dp_rank_with_random_init():
    assert rank_seed(1234, pp_rank=0) == 1234
    assert rank_seed(1234, pp_rank=3, dp_rank=2) == 1534
    assert rank_seed(1234, pp_rank=3, dp_rank=2, data_parallel_random_init=True) == 1554


def test_set_random_seed_seeds_python_numpy_and_torch_with_the_rank_seed():
    set_random_seed(1234, pp_rank=1)
    got = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1334)
    np.random.seed(1334)
    torch.manual_seed(1334)
    assert got == (random.random(), np.random.rand(), torch.rand(1).item())


@pytest.mark.parametrize("tp_rank", [0, 1])
def test_model_parallel_stream_is_seed_plus_2718_plus_tp_rank(tp_rank):
    tracker = set_random_seed(1234, tp_rank=tp_rank, pp_rank=1, device_type="cpu")
    with tracker.fork(MODEL_PARALLEL_RNG):
        drawn = torch.rand(4)
    expected = torch.rand(4, generator=torch.Generator().manual_seed(1334 + 2718 + tp_rank))
    assert torch.equal(drawn, expected)


def test_expert_and_data_parallel_streams_use_their_offsets():
    tracker = set_random_seed(1000, ep_rank=2, etp_rank=1, device_type="cpu")
    with tracker.fork(EXPERT_PARALLEL_RNG):
        expert = torch.rand(3)
    with tracker.fork(DATA_PARALLEL_RNG):
        data = torch.rand(3)
    assert torch.equal(
        expert, torch.rand(3, generator=torch.Generator().manual_seed(1000 + 1024 + 201))
    )
    assert torch.equal(data, torch.rand(3, generator=torch.Generator().manual_seed(1000)))


def test_fork_leaves_the_default_stream_alone_and_continues_its_own():
    tracker = set_random_seed(7, device_type="cpu")
    with tracker.fork():
        first = torch.rand(2)
    outside = torch.rand(2)
    with tracker.fork():
        second = torch.rand(2)
    gen = torch.Generator().manual_seed(7 + 2718)
    assert torch.equal(torch.cat([first, second]), torch.rand(4, generator=gen))
    assert torch.equal(outside, torch.rand(2, generator=torch.Generator().manual_seed(7)))


def test_rng_state_round_trip_replays_every_stream():
    tracker = set_random_seed(42, device_type="cpu")
    torch.rand(5)
    state = get_rng_state(tracker)
    assert set(state) == {
        "random_rng_state",
        "np_rng_state",
        "torch_rng_state",
        "cuda_rng_state",
        "rng_tracker_states",
    }
    assert set(state["rng_tracker_states"]) == {
        DATA_PARALLEL_RNG,
        MODEL_PARALLEL_RNG,
        EXPERT_PARALLEL_RNG,
    }

    def draw(t: RNGStatesTracker):
        with t.fork():
            tp = torch.rand(2)
        return random.random(), np.random.rand(), torch.rand(2), tp

    before = draw(tracker)
    other = set_random_seed(99, device_type="cpu")
    set_rng_state(state, other)
    after = draw(other)
    assert before[:2] == after[:2]
    assert torch.equal(before[2], after[2]) and torch.equal(before[3], after[3])


def test_bad_seeds_and_foreign_states_fail_clearly():
    with pytest.raises(ValueError, match="--seed must be a positive integer"):
        set_random_seed(0)
    tracker = RNGStatesTracker("cpu")
    tracker.add("a", 1)
    with pytest.raises(ValueError, match="already used"):
        tracker.add("b", 1)
    with pytest.raises(KeyError, match="was not added"):
        with tracker.fork("missing"):
            pass
    with pytest.raises(ValueError, match="saved on another device type"):
        tracker.set_states({"a": torch.zeros(16, dtype=torch.uint8)})  # a CUDA-sized state
