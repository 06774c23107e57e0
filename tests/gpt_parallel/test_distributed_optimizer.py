"""The distributed optimizer: 1/dp of the state, same updates and grad norm as one rank."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.ddp import DDPConfig, DistributedDataParallel, DistributedOptimizer
from gpt_parallel.optim.grad_scaler import ConstantGradScaler
from torch import nn

STEPS = 5
LR = 1e-2
CLIP = 0.05  # below the first steps' norms, so clipping really scales


def _mlp(seed: int = 0, hidden: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 4))


def _batch(step: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(200 + step)
    return torch.randn(n, 6, generator=gen), torch.randn(n, 4, generator=gen)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dtype = next(model.parameters()).dtype
    return ((model(x.to(dtype)) - y.to(dtype)) ** 2).float().mean()


def _adamw(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=LR, weight_decay=0.1)


def _reference(steps: int = STEPS, hidden: int = 16) -> tuple[list[float], list[torch.Tensor], int]:
    """One rank, whole batch, plain AdamW with clipping: norms, weights, state elements."""
    model = _mlp(hidden=hidden)
    opt = _adamw(model.parameters())
    norms = []
    for step in range(steps):
        opt.zero_grad()
        _loss(model, *_batch(step)).backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP).item())
        opt.step()
    state = sum(v.numel() for s in opt.state.values() for k, v in s.items() if k != "step")
    return norms, [p.detach().clone() for p in model.parameters()], state


def _build(config: DDPConfig, hidden: int = 16):
    model = _mlp(seed=dist.get_rank(), hidden=hidden)
    ddp = DistributedDataParallel(model, config, dist.group.WORLD)
    ddp.broadcast_params()
    return model, ddp, DistributedOptimizer(_adamw(model.parameters()), ddp, clip_grad=CLIP)


def _train(ddp, opt, steps: range) -> list[float]:
    rank, world = dist.get_rank(), dist.get_world_size()
    norms = []
    for step in steps:
        ddp.zero_grad_buffer()
        opt.zero_grad()
        x, y = (t.chunk(world)[rank] for t in _batch(step))
        _loss(ddp, x, y).backward()
        ddp.finish_grad_sync()
        success, norm, zeros = opt.step()
        assert success and zeros == 0
        norms.append(norm)
    return norms


def _train_distributed(config_kwargs: dict, hidden: int) -> tuple:
    config = DDPConfig(use_distributed_optimizer=True, **config_kwargs)
    model, ddp, opt = _build(config, hidden)
    norms = _train(ddp, opt, range(STEPS))
    stale = [p.detach().clone() for p in model.parameters()]
    if config.overlap_param_gather:
        ddp.disable_forward_pre_hook()  # finishes the gathers the next forward would wait for
    weights = [p.detach().clone() for p in model.parameters()]
    layout = ddp.grad_buffers[0].layout
    padding = layout.numel - sum(p.numel() for p in model.parameters())
    return norms, weights, stale, opt.state_numel(), padding


@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(overlap_grad_reduce=True, bucket_size=60),
        dict(overlap_grad_reduce=True, bucket_size=60, overlap_param_gather=True),
        dict(average_in_collective=True),
    ],
    ids=["sync", "overlap-grad", "overlap-grad-and-param", "avg-in-coll"],
)
def test_dp2_distributed_adam_equals_one_rank_adam_with_the_same_grad_norm(run_on_ranks, config):
    results = run_on_ranks(_train_distributed, 2, config, 16)
    ref_norms, ref_weights, _ = _reference()
    for norms, weights, stale, _, _ in results:
        assert norms == pytest.approx(ref_norms, rel=1e-6)
        for got, want in zip(weights, ref_weights, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        if config.get("overlap_param_gather"):  # the last update waits for the next forward
            assert any(not torch.equal(s, w) for s, w in zip(stale, weights, strict=True))


def test_dp4_state_is_a_quarter_of_the_replicated_state(run_on_ranks):
    hidden = 256  # large enough that padding is small next to the parameters
    results = run_on_ranks(_train_distributed, 4, dict(), hidden)
    ref_norms, ref_weights, replicated = _reference(hidden=hidden)
    per_rank = [state for _, _, _, state, _ in results]
    padding = results[0][4]
    assert sum(per_rank) == replicated  # every moment element lives on exactly one rank
    for state in per_rank:
        assert abs(state - replicated / 4) <= 2 * padding  # two moments, +- the padding
    for norms, weights, *_ in results:
        assert norms == pytest.approx(ref_norms, rel=1e-6)
        for got, want in zip(weights, ref_weights, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def _resume_from_state_dict() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    config = DDPConfig(use_distributed_optimizer=True, overlap_grad_reduce=True, bucket_size=60)
    model, ddp, opt = _build(config)
    _train(ddp, opt, range(3))
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(opt.state_dict())  # torch's state_dict holds live references
    _train(ddp, opt, range(3, STEPS))
    model2, ddp2, opt2 = _build(config)
    model2.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)
    _train(ddp2, opt2, range(3, STEPS))
    return list(model.parameters()), list(model2.parameters())


def test_state_dict_round_trip_resumes_the_same_run(run_on_ranks):
    for straight, resumed in run_on_ranks(_resume_from_state_dict, 2):
        for a, b in zip(straight, resumed, strict=True):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)


def _load_with_other_layout() -> str:
    _, _, opt = _build(DDPConfig(use_distributed_optimizer=True))
    _, _, other = _build(
        DDPConfig(use_distributed_optimizer=True, overlap_grad_reduce=True, bucket_size=60)
    )
    try:
        other.load_state_dict(opt.state_dict())
    except ValueError as err:
        return str(err)
    return "no error"


def test_loading_a_state_with_another_bucket_layout_fails_in_one_line(run_on_ranks):
    for message in run_on_ranks(_load_with_other_layout, 2):
        assert "different DP size or bucket layout" in message


def _bf16_model_keeps_fp32_main_shards() -> tuple[list[torch.dtype], int, int]:
    model = _mlp().bfloat16()
    config = DDPConfig(use_distributed_optimizer=True, grad_reduce_in_fp32=True)
    ddp = DistributedDataParallel(model, config, dist.group.WORLD)
    opt = DistributedOptimizer(_adamw(model.parameters()), ddp, clip_grad=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    _train(ddp, opt, range(2))
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    owned = sum(m.numel() for m in opt.main_params)
    return [m.dtype for m in opt.main_params], owned, changed


def test_bf16_model_gets_fp32_main_shards_and_every_param_is_updated(run_on_ranks):
    results = run_on_ranks(_bf16_model_keeps_fp32_main_shards, 2)
    assert sum(owned for _, owned, _ in results) == 180  # the MLP's elements, split in two
    for dtypes, _, changed in results:
        assert set(dtypes) == {torch.float32}
        assert changed == 4  # all-gather brought every rank the other rank's updates


def test_a_ddp_without_the_distributed_optimizer_is_refused():
    ddp = DistributedDataParallel(_mlp(), DDPConfig(), None)
    with pytest.raises(ValueError, match="use_distributed_optimizer"):
        DistributedOptimizer(_adamw(ddp.module.parameters()), ddp)


def _scaled_loss_then_overflow() -> tuple[list[torch.Tensor], tuple, bool]:
    model = _mlp(seed=dist.get_rank())
    ddp = DistributedDataParallel(
        model, DDPConfig(use_distributed_optimizer=True), dist.group.WORLD
    )
    ddp.broadcast_params()
    scaler = ConstantGradScaler(1024.0, device=torch.device("cpu"))
    opt = DistributedOptimizer(_adamw(model.parameters()), ddp, clip_grad=CLIP, grad_scaler=scaler)
    rank, world = dist.get_rank(), dist.get_world_size()
    for step in range(STEPS + 1):
        ddp.zero_grad_buffer()
        opt.zero_grad()
        x, y = (t.chunk(world)[rank] for t in _batch(step))
        loss = _loss(ddp, x, y)
        if step == STEPS and rank == 1:
            loss = loss * float("inf")  # one rank overflows: every rank must skip the step
        opt.scale_loss(loss).backward()
        ddp.finish_grad_sync()
        before = [p.detach().clone() for p in model.parameters()]
        result = opt.step()
    unchanged = all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    return before, result, unchanged


def test_loss_scale_is_undone_and_an_overflow_on_one_rank_skips_the_step(run_on_ranks):
    _, ref_weights, _ = _reference()
    for weights, result, unchanged in run_on_ranks(_scaled_loss_then_overflow, 2):
        assert result == (False, None, None) and unchanged
        for got, want in zip(weights, ref_weights, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
