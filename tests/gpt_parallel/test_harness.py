"""The multi-rank harness in tests/conftest.py: results, errors and hangs."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.distributed as dist


def _all_reduce_rank_ids() -> tuple[int, int, float]:
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    return dist.get_rank(), dist.get_world_size(), value.item()


def _raise_on_rank_one(message: str) -> int:
    if dist.get_rank() == 1:
        raise ValueError(message)
    return dist.get_rank()


def _hang_on_rank_one() -> int:
    if dist.get_rank() == 1:
        time.sleep(600)
    return dist.get_rank()


def test_two_ranks_all_reduce_and_return_results_in_rank_order(run_on_ranks):
    results = run_on_ranks(_all_reduce_rank_ids, 2)
    assert results == [(0, 2, 3.0), (1, 2, 3.0)]


def test_an_exception_on_one_rank_fails_with_that_ranks_traceback(run_on_ranks):

    with pytest.raises(AssertionError) as info:
        run_on_ranks(_raise_on_rank_one, 2, "boom from rank one")
    text = str(info.value)
    assert "rank 1: ValueError: boom from rank one" in text
    assert "_raise_on_rank_one" in text  # the child's traceback is included


def test_a_hanging_rank_fails_the_test_at_the_timeout(run_on_ranks):
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"rank 1: did not finish within 3 s"):
        run_on_ranks(_hang_on_rank_one, 2, timeout=3.0)
    assert time.monotonic() - start < 15.0


def _crash_on_rank_one() -> int:
    if dist.get_rank() == 1:
        os._exit(3)  # dies without reporting, as a segfault would
    dist.barrier()  # rank 0 would wait here for the whole timeout
    return dist.get_rank()


def test_a_crashing_rank_fails_the_test_without_waiting_for_the_timeout(run_on_ranks):
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"rank 1: exited with code 3 and no result"):
        run_on_ranks(_crash_on_rank_one, 2, timeout=60.0)
    assert time.monotonic() - start < 20.0
