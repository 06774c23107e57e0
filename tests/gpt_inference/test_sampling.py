"""The original's sampling: greedy, temperature, top-k and top-p masks, seeded draws."""

from __future__ import annotations

import pytest
import torch
from gpt_inference.sampling import (
    SamplingError,
    SamplingParams,
    mask_top_k,
    mask_top_p,
    sample,
)


def test_top_k_keeps_the_k_largest_logits_of_each_row():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0], [9.0, 0.0, 8.0, 7.0]])
    mask_top_k(logits, 2)
    assert torch.isinf(logits).tolist() == [[True, False, True, False], [False, True, False, True]]


def test_top_p_keeps_the_token_that_crosses_the_threshold():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    mask_top_p(logits, 0.6)  # 0.5 < 0.6, 0.8 crosses it: both stay (the original's shift)
    assert torch.isfinite(logits).tolist() == [[True, True, False, False]]
    logits = probs.log()
    mask_top_p(logits, 0.1)  # the most likely token always stays
    assert torch.isfinite(logits).tolist() == [[True, False, False, False]]


def test_top_k_one_is_argmax_whatever_the_temperature():
    logits = torch.tensor([[0.1, 2.0, 1.9], [3.0, -1.0, 0.0]])
    params = SamplingParams(top_k=1, temperature=50.0)
    assert sample(logits, params).tolist() == [1, 0]


def test_a_seeded_generator_draws_as_torch_manual_seed_does():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(3))
    params = SamplingParams(top_k=10, temperature=0.7)
    ours = sample(logits, params, generator=torch.Generator().manual_seed(1234))
    torch.random.manual_seed(1234)
    original = sample(logits, params)
    assert ours.tolist() == original.tolist()


def test_samples_come_only_from_the_kept_tokens():
    logits = torch.zeros(64, 20)
    logits[:, :3] = 5.0
    drawn = sample(logits, SamplingParams(top_k=3), generator=torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(top_k=2, top_p=0.5), "top_k and top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(temperature=0.0), "temperature"),
    ],
)
def test_parameters_the_original_refuses_are_refused(params, match):
    with pytest.raises(SamplingError, match=match):
        SamplingParams(**params)
