"""Data parallelism: the bucket layout, DDP gradients and updates equal to one rank's, hash check."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.ddp import (
    DDPConfig,
    DistributedDataParallel,
    check_param_hashes_across_dp_replicas,
    plan_buffer,
)
from gpt_parallel.ddp.comm import reduce_scatter_flat, reduce_scatter_via_all_reduce, shard_of
from torch import nn

# The tiny MLP's parameters in registration order: w1 (16x6), b1, w2 (4x16), b2.
MLP_NUMELS = [96, 16, 64, 4]
STEPS = 5
LR = 1e-2


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))


def _batch(step: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(n, 6, generator=gen), torch.randn(n, 4, generator=gen)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def _reference(steps: int = STEPS) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One rank, whole batch: the first step's gradients and the weights after ``steps``."""
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1)
    first = []
    for step in range(steps):
        opt.zero_grad()
        _loss(model, *_batch(step)).backward()
        if step == 0:
            first = [p.grad.clone() for p in model.parameters()]
        opt.step()
    return first, [p.detach().clone() for p in model.parameters()]


# --- layout (pure arithmetic, hand-computed) ---------------------------------------------------

BUFFER_ORDER = MLP_NUMELS[::-1]  # b2, w2, b1, w1: reverse of registration


@pytest.mark.parametrize(
    ("kwargs", "slots", "buckets"),
    [
        # plain DDP, one bucket: no padding at all
        (dict(bucket_size=None), [(0, 4), (4, 68), (68, 84), (84, 180)], [(0, 180)]),
        # plain DDP, buckets of >= 60 elements close after w2 (68) and after w1 (180 - 68 = 112)
        (dict(bucket_size=60), [(0, 4), (4, 68), (68, 84), (84, 180)], [(0, 68), (68, 180)]),
        # distributed optimizer, dp 2: params start at multiples of 64, buckets end at lcm(2, 128)
        (
            dict(bucket_size=60, dp_size=2, use_distributed_optimizer=True),
            [(0, 4), (64, 128), (128, 144), (192, 288)],
            [(0, 128), (128, 384)],
        ),
        # dp 3: buckets end at multiples of lcm(3, 128) = 384
        (
            dict(bucket_size=60, dp_size=3, use_distributed_optimizer=True),
            [(0, 4), (64, 128), (384, 400), (448, 544)],
            [(0, 384), (384, 768)],
        ),
        # one bucket padded to 2^16 for NCCL bus bandwidth
        (
            dict(
                bucket_size=None,
                dp_size=2,
                use_distributed_optimizer=True,
                pad_for_high_nccl_busbw=True,
            ),
            [(0, 4), (64, 128), (128, 144), (192, 288)],
            [(0, 65536)],
        ),
    ],
)
def test_bucket_layout_matches_the_hand_computed_table(kwargs, slots, buckets):
    layout = plan_buffer(BUFFER_ORDER, **kwargs)
    assert [(s.start, s.end) for s in layout.slots] == slots
    assert list(layout.buckets) == buckets
    assert layout.numel == buckets[-1][1]
    assert all((end - start) % kwargs.get("dp_size", 1) == 0 for start, end in layout.buckets)


def test_layout_counts_unpadded_elements_and_gives_a_shared_embedding_its_own_bucket():
    layout = plan_buffer(
        [10, 20, 30],
        bucket_size=None,
        dp_size=2,
        use_distributed_optimizer=True,
        starts_new_bucket=[False, True, False],
    )
    assert [(s.start, s.end, s.bucket) for s in layout.slots] == [
        (0, 10, 0),
        (128, 148, 1),
        (256, 286, 2),
    ]
    assert layout.buckets == ((0, 128), (128, 256), (256, 384))
    # the first bucket counts up to the shared parameter's aligned start (64), as the original
    assert layout.numel_unpadded == 64 + 20 + 30


def test_ddp_buffer_views_follow_reverse_registration_order_in_buckets():
    model = _mlp()
    ddp = DistributedDataParallel(model, DDPConfig(overlap_grad_reduce=True, bucket_size=60), None)
    (buf,) = ddp.grad_buffers
    w1, b1, w2, b2 = model.parameters()
    assert [(buf.param_index[p].start, buf.param_index[p].bucket) for p in (b2, w2, b1, w1)] == [
        (0, 0),
        (4, 0),
        (68, 1),
        (84, 1),
    ]
    assert [b.params for b in buf.buckets] == [(b2, w2), (b1, w1)]
    assert w2.main_grad.data_ptr() == buf.grad_data[4:].data_ptr()
    assert w2.main_grad.shape == w2.shape


def test_without_overlap_everything_is_one_bucket_and_default_size_follows_dp():
    config = DDPConfig(bucket_size=60)
    assert config.effective_bucket_size(dp_size=2) is None
    assert DDPConfig(overlap_grad_reduce=True).effective_bucket_size(dp_size=64) == 64_000_000
    assert DDPConfig(overlap_grad_reduce=True).effective_bucket_size(dp_size=2) == 40_000_000
    assert (
        DDPConfig(overlap_grad_reduce=True, bucket_size=60).effective_bucket_size(
            2, disable_bucketing=True
        )
        is None
    )


def test_num_buckets_gives_the_bucket_size_and_excludes_the_bucket_size_flag():
    assert DDPConfig.bucket_size_from(None, 4, 180) == 45
    assert DDPConfig.bucket_size_from(100, None, 180) == 100
    with pytest.raises(ValueError, match="--ddp-num-buckets and --ddp-bucket-size"):
        DDPConfig.bucket_size_from(100, 4, 180)
    with pytest.raises(ValueError, match="--ddp-num-buckets must be greater than 0"):
        DDPConfig.bucket_size_from(None, 0, 180)


def test_grad_buffer_dtype_is_fp32_when_asked_else_the_params_dtype():
    fp32 = DistributedDataParallel(_mlp().bfloat16(), DDPConfig(grad_reduce_in_fp32=True), None)
    bf16 = DistributedDataParallel(_mlp().bfloat16(), DDPConfig(), None)
    assert fp32.grad_buffers[0].grad_data.dtype == torch.float32
    assert bf16.grad_buffers[0].grad_data.dtype == torch.bfloat16


def test_the_hook_moves_grad_into_main_grad_and_frees_it_on_one_rank():
    model = _mlp()
    ddp = DistributedDataParallel(model, DDPConfig(), None)
    ref = _mlp()
    for _ in range(2):  # two backward passes accumulate into main_grad
        _loss(ddp, *_batch(0)).backward()
        _loss(ref, *_batch(0)).backward()
    ddp.finish_grad_sync()
    for param, expected in zip(model.parameters(), ref.parameters(), strict=True):
        assert param.grad is None
        torch.testing.assert_close(param.main_grad, expected.grad, rtol=0, atol=1e-6)
    ddp.zero_grad_buffer()
    assert all(not p.main_grad.any() for p in model.parameters())


# --- DP2 equals one rank ------------------------------------------------------------------------


def _train_data_parallel(config_kwargs: dict, steps: int, micro_batches: int) -> tuple:
    rank, world = dist.get_rank(), dist.get_world_size()
    model = _mlp(seed=rank)  # replicas differ until broadcast_params
    ddp = DistributedDataParallel(model, DDPConfig(**config_kwargs), dist.group.WORLD)
    ddp.broadcast_params()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1)
    first, launched_in_backward, launched_under_no_sync = [], [], []
    for step in range(steps):
        ddp.zero_grad_buffer()
        x, y = (t.chunk(world)[rank] for t in _batch(step))
        pieces = list(zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True))
        for mx, my in pieces[:-1]:
            with ddp.no_sync():
                (_loss(ddp, mx, my) / micro_batches).backward()
            launched_under_no_sync.append(any(s.grad_launched for s in ddp.bucket_syncs))
        (_loss(ddp, *pieces[-1]) / micro_batches).backward()
        launched_in_backward.append(all(s.grad_launched for s in ddp.bucket_syncs))
        ddp.finish_grad_sync()
        for param in model.parameters():
            param.grad = param.main_grad
        if step == 0:
            first = [p.main_grad.clone() for p in model.parameters()]
        opt.step()
        opt.zero_grad()  # .grad aliases main_grad; backward must not accumulate into it
    weights = [p.detach().clone() for p in model.parameters()]
    return first, weights, len(ddp.bucket_syncs), launched_in_backward, launched_under_no_sync


@pytest.mark.parametrize("overlap", [False, True], ids=["sync", "overlap"])
@pytest.mark.parametrize("average_in_collective", [False, True], ids=["div-first", "avg-in-coll"])
def test_dp2_gradients_and_adam_weights_equal_one_rank_on_the_whole_batch(
    run_on_ranks, overlap, average_in_collective
):
    config = dict(
        overlap_grad_reduce=overlap, bucket_size=60, average_in_collective=average_in_collective
    )
    results = run_on_ranks(_train_data_parallel, 2, config, STEPS, 1)
    ref_grads, ref_weights = _reference()
    for first, weights, num_buckets, in_backward, _ in results:
        assert num_buckets == (2 if overlap else 1)
        assert all(in_backward) == overlap  # overlap: every bucket launched during backward
        for got, want in zip(first + weights, ref_grads + ref_weights, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_dp4_with_two_micro_batches_under_no_sync_equals_one_rank(run_on_ranks):
    config = dict(overlap_grad_reduce=True, bucket_size=60)
    results = run_on_ranks(_train_data_parallel, 4, config, 3, 2)
    ref_grads, ref_weights = _reference(3)
    for first, weights, _, in_backward, under_no_sync in results:
        assert all(in_backward) and not any(under_no_sync)
        for got, want in zip(first + weights, ref_grads + ref_weights, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def _finish_without_a_gradient() -> str:
    model = _mlp()
    ddp = DistributedDataParallel(model, DDPConfig(overlap_grad_reduce=True), dist.group.WORLD)
    ddp.module[2].weight.requires_grad_(False)  # the buffer expects it; it never gets a grad
    _loss(ddp, *_batch(0)).backward()
    try:
        ddp.finish_grad_sync()
    except RuntimeError as err:
        return str(err)
    return "no error"


def test_overlap_fails_in_one_line_when_a_parameter_gets_no_gradient(run_on_ranks):
    messages = run_on_ranks(_finish_without_a_gradient, 2)
    assert all("3/4 of its parameters got a gradient" in m for m in messages)


def _reduce_scatter_both_ways() -> tuple[torch.Tensor, torch.Tensor]:
    rank = dist.get_rank()
    data = torch.arange(8, dtype=torch.float64) * (rank + 1)
    native, fallback = data.clone(), data.clone()
    reduce_scatter_flat(native, dist.group.WORLD, average=False, async_op=False)
    reduce_scatter_via_all_reduce(fallback, dist.group.WORLD, average=False, async_op=False)
    return shard_of(native, dist.group.WORLD), shard_of(fallback, dist.group.WORLD)


def test_reduce_scatter_fallback_matches_the_native_collective(run_on_ranks):
    results = run_on_ranks(_reduce_scatter_both_ways, 2)
    total = torch.arange(8, dtype=torch.float64) * 3
    for rank, (native, fallback) in enumerate(results):
        torch.testing.assert_close(native, total[rank * 4 : (rank + 1) * 4], rtol=0, atol=0)
        torch.testing.assert_close(fallback, native, rtol=0, atol=0)


# --- weight hash --------------------------------------------------------------------------------


def _hash_checks() -> tuple[bool, bool, bool]:
    model = _mlp(seed=dist.get_rank())
    ddp = DistributedDataParallel(model, DDPConfig(), dist.group.WORLD)
    ddp.broadcast_params()
    same = check_param_hashes_across_dp_replicas([model], dist.group.WORLD, cross_check=True)
    if dist.get_rank() == 1:
        with torch.no_grad():
            model[2].bias[0] += 1e-7
    local = check_param_hashes_across_dp_replicas([model], dist.group.WORLD)
    crossed = check_param_hashes_across_dp_replicas([model], dist.group.WORLD, cross_check=True)
    return same, local, crossed


def test_weight_hash_check_detects_a_perturbed_replica(run_on_ranks):
    results = run_on_ranks(_hash_checks, 2)
    assert results == [(True, True, False), (True, False, False)]


def test_nan_check_names_the_flag_before_the_reduction():
    model = _mlp()
    ddp = DistributedDataParallel(model, DDPConfig(check_for_nan_in_grad=True), None)
    (_loss(ddp, *_batch(0)) * float("nan")).backward()
    with pytest.raises(RuntimeError, match="--check-for-nan-in-loss-and-grad"):
        ddp.finish_grad_sync()


def test_params_of_two_dtypes_get_two_buffers_each_in_reverse_order():
    model = _mlp()
    model[2].bfloat16()
    ddp = DistributedDataParallel(model, DDPConfig(), None)
    assert [(b.param_dtype, b.grad_data.dtype, b.layout.numel) for b in ddp.grad_buffers] == [
        (torch.float32, torch.float32, 112),
        (torch.bfloat16, torch.bfloat16, 68),
    ]
    w2 = model[2].weight
    assert ddp.grad_buffers[1].param_index[w2].start == 4  # after b2, the last registered


def test_a_kernel_that_already_added_into_main_grad_is_not_counted_twice():
    model = _mlp()
    ddp = DistributedDataParallel(model, DDPConfig(), None)
    bias = model[2].bias
    bias.grad_added_to_main_grad = True  # as a fused wgrad kernel marks it
    _loss(ddp, *_batch(0)).backward()
    assert not bias.main_grad.any() and bias.grad is None
    assert model[2].weight.main_grad.any()
    ddp.zero_grad_buffer()
    assert bias.grad_added_to_main_grad is False
