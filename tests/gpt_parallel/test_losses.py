"""Microbatch loss for backward and the reported per-iteration loss (reference section 7.1)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.losses import loss_for_backward, reduce_loss_reports
from gpt_parallel.parallel_state import ParallelState


def test_backward_loss_is_mean_over_own_tokens_divided_by_microbatches():
    loss = loss_for_backward(torch.tensor(12.0), torch.tensor(4), num_microbatches=3)
    assert loss.item() == pytest.approx(1.0)
    assert loss_for_backward(torch.tensor(12.0), 4, 3, calculate_per_token_loss=True).item() == 12.0
    assert loss_for_backward(torch.tensor(0.0), 0, 2).item() == 0.0  # all tokens masked


def test_reported_loss_is_token_weighted_over_microbatches_not_a_mean_of_means():
    reports = [
        {"lm loss": torch.tensor([10.0, 5.0])},  # mean 2.0 over 5 tokens
        {"lm loss": torch.tensor([3.0, 1.0])},  # mean 3.0 over 1 token
    ]
    assert reduce_loss_reports(reports, None)["lm loss"].item() == pytest.approx(13.0 / 6.0)


def test_one_value_reports_are_averaged_over_microbatches():
    reports = [{"loss": torch.tensor([2.0])}, {"loss": torch.tensor([4.0])}]
    assert reduce_loss_reports(reports, None)["loss"].item() == pytest.approx(3.0)


def _reduce_over_dp() -> float:
    ps = ParallelState.build()
    rank = dist.get_rank()
    report = [4.0, 4.0] if rank == 0 else [24.0, 8.0]  # means 1 and 3
    reports = [{"lm loss": torch.tensor(report)}]
    return reduce_loss_reports(reports, ps.group("dp-cp"))["lm loss"].item()


def test_reported_loss_is_reduced_over_data_parallel_ranks(run_on_ranks):
    # rank 0: sum 4 over 4 tokens; rank 1: sum 24 over 8 tokens -> 28 / 12 on both ranks.
    assert run_on_ranks(_reduce_over_dp, 2) == [pytest.approx(28 / 12), pytest.approx(28 / 12)]
