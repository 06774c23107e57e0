"""The same RNG streams and mixed-precision updates on a CUDA device."""

from __future__ import annotations

import math

import pytest
import torch
from gpt_parallel.config import LearningRateConfig, OptimizerConfig, PrecisionConfig
from gpt_parallel.optim import build_optimizer
from gpt_parallel.random import MODEL_PARALLEL_RNG, set_random_seed
from torch import nn

pytestmark = pytest.mark.gpu


def test_cuda_model_parallel_stream_is_seed_plus_2718_plus_tp_rank():
    tracker = set_random_seed(1234, tp_rank=1, device_type="cuda")
    assert tracker.device_type == "cuda"
    with tracker.fork(MODEL_PARALLEL_RNG):
        drawn = torch.rand(4, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(1234 + 2718 + 1)
    assert torch.equal(drawn, torch.rand(4, device="cuda", generator=gen))


def test_cuda_fp16_overflow_skips_and_bf16_updates_main_params():
    fp16 = nn.Linear(2, 2).cuda().half()
    opt = build_optimizer(
        fp16.named_parameters(),
        OptimizerConfig(),
        LearningRateConfig(lr=0.1),
        PrecisionConfig(fp16=True),
    )
    assert opt.get_loss_scale().device.type == "cuda"
    for p in fp16.parameters():
        p.grad = torch.full_like(p, float("inf"))
    assert opt.step() == (False, None, None)

    bf16 = nn.Linear(2, 2).cuda().bfloat16()
    opt = build_optimizer(
        bf16.named_parameters(),
        OptimizerConfig(),
        LearningRateConfig(lr=0.1),
        PrecisionConfig(bf16=True),
    )
    for p in bf16.parameters():
        p.grad = torch.full_like(p, 0.5)
    ok, norm, _ = opt.step()
    assert ok and norm == pytest.approx(math.sqrt(6 * 0.25))  # six gradients of 0.5
    for p in bf16.parameters():
        assert p.main_param.device.type == "cuda" and p.main_param.dtype == torch.float32
        assert torch.equal(p.detach(), p.main_param.detach().bfloat16())
