"""fp16/bf16 gradients summed over micro-batches in fp32, as the original's fp32 grad buffer."""

from __future__ import annotations

import torch
from gpt_parallel.grad_accumulation import FP32GradAccumulator


def _grads_of_each_microbatch(weight: torch.Tensor, inputs: list[torch.Tensor]) -> list:
    grads = []
    for x in inputs:
        w = weight.detach().clone().requires_grad_(True)
        (x @ w).square().sum().backward()
        grads.append(w.grad.float())
    return grads


def test_bf16_gradients_accumulate_into_an_fp32_main_grad():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(8, 8).bfloat16())
    inputs = [torch.randn(4, 8).bfloat16() for _ in range(6)]
    accumulator = FP32GradAccumulator([weight])
    for x in inputs:
        (x @ weight).square().sum().backward()
    assert weight.grad is None
    assert weight.main_grad.dtype == torch.float32
    expected = torch.stack(_grads_of_each_microbatch(weight, inputs)).sum(0)
    assert torch.equal(weight.main_grad, expected)
    accumulator.zero()
    assert weight.main_grad is None


def test_fp32_parameters_are_left_alone():
    weight = torch.nn.Parameter(torch.randn(3, 3))
    accumulator = FP32GradAccumulator([weight])
    (torch.randn(2, 3) @ weight).sum().backward()
    assert accumulator.params == [] and weight.grad is not None
