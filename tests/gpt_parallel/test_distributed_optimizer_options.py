"""The distributed optimizer's options: instances, the gather launched by the step, CPU offload,
and the division fused into the gradient reduction. Each gives the plain optimizer's numbers."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.comm import volume
from gpt_parallel.config import DistributedConfig, ExpertParallelConfig
from gpt_parallel.ddp import DDPConfig, DistributedDataParallel, DistributedOptimizer
from gpt_parallel.ddp import reduce_op as reduce_op_module
from gpt_parallel.ddp.cpu_offload import CpuOffloadConfig, select_offloaded
from gpt_parallel.ddp.reduce_op import plan_reduction
from gpt_parallel.parallel_state import ParallelState, all_group_ranks, build_grids
from torch import nn

STEPS = 4
LR = 1e-2
CLIP = 0.05  # below the first steps' norms, so clipping really scales


def _mlp(seed: int = 0, hidden: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 4))


def _batch(step: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(300 + step)
    return torch.randn(n, 6, generator=gen), torch.randn(n, 4, generator=gen)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def _adamw(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=LR, weight_decay=0.1)


def _reference(hidden: int = 16) -> tuple[list[float], list[torch.Tensor], int]:
    """One rank, the whole batch, plain AdamW with clipping: norms, weights, state elements."""
    model = _mlp(hidden=hidden)
    opt = _adamw(model.parameters())
    norms = []
    for step in range(STEPS):
        opt.zero_grad()
        _loss(model, *_batch(step)).backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP).item())
        opt.step()
    state = sum(v.numel() for s in opt.state.values() for k, v in s.items() if k != "step")
    return norms, [p.detach().clone() for p in model.parameters()], state


def _train(ddp: DistributedDataParallel, opt: DistributedOptimizer) -> list[float]:
    rank, world = dist.get_rank(), dist.get_world_size()
    norms = []
    for step in range(STEPS):
        ddp.zero_grad_buffer()
        opt.zero_grad()
        x, y = (t.chunk(world)[rank] for t in _batch(step))
        _loss(ddp, x, y).backward()
        ddp.finish_grad_sync()
        success, norm, _ = opt.step()
        assert success
        norms.append(norm)
    if ddp.config.overlap_param_gather:
        ddp.disable_forward_pre_hook()  # finishes the gathers the next forward would wait for
    return norms


def _assert_matches_reference(results, hidden: int = 16) -> None:
    ref_norms, ref_weights, _ = _reference(hidden)
    for result in results:
        norms, weights = result[0], result[1]
        assert norms == pytest.approx(ref_norms, rel=1e-6)
        for got, want in zip(weights, ref_weights, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


# --- 1. --num-distributed-optimizer-instances: the groups ------------------------------------


def _plan(world: int, rank: int = 0, **sizes: int | bool) -> ParallelState:
    expert = {k: sizes.pop(k) for k in list(sizes) if k.startswith("expert_")}
    return ParallelState.plan(
        DistributedConfig(**sizes), ExpertParallelConfig(**expert), world_size=world, rank=rank
    )


def test_instances_cut_each_dp_cp_group_into_adjacent_runs():
    ps = _plan(8, rank=5, num_distributed_optimizer_instances=2)
    assert ps.group_ranks("dp-cp") == list(range(8))
    assert ps.group_ranks("intra-dp-cp") == [4, 5, 6, 7]
    assert ps.group_ranks("inter-dp-cp") == [1, 5]
    assert ps.group_ranks("intra-dist-opt") == [4, 5, 6, 7]
    # tp 2, cp 2, dp 4: the DP x CP group of rank 0 is the even ranks, cp fastest.
    ps = _plan(
        16,
        rank=0,
        tensor_model_parallel_size=2,
        context_parallel_size=2,
        num_distributed_optimizer_instances=2,
    )
    assert ps.group_ranks("dp-cp") == [0, 2, 4, 6, 8, 10, 12, 14]
    assert ps.group_ranks("intra-dp-cp") == [0, 2, 4, 6]
    assert ps.group_ranks("inter-dp-cp") == [0, 8]
    assert ps.group_ranks("intra-dist-opt") == list(range(8))  # the instance with its tp ranks


def test_one_instance_leaves_the_instance_groups_empty():
    ps = _plan(8, rank=3)
    for name in ("intra-dp-cp", "inter-dp-cp", "intra-dist-opt"):
        assert ps.group_ranks(name) == []
    assert ParallelState.build().group("intra-dp-cp") is None


def _layouts():
    for world, tp, pp, cp, ep, n in itertools.product(
        (8, 16), (1, 2), (1, 2), (1, 2), (1, 2, 4), (2, 4)
    ):
        sizes = dict(
            tensor_model_parallel_size=tp,
            pipeline_model_parallel_size=pp,
            context_parallel_size=cp,
            num_distributed_optimizer_instances=n,
        )
        try:
            yield (
                n,
                build_grids(
                    DistributedConfig(**sizes),
                    ExpertParallelConfig(expert_model_parallel_size=ep),
                    world,
                ),
            )
        except ValueError:
            continue


def _originals_inter_groups(expert_grid, n: int) -> list[list[int]]:
    """The original: level 2 of the hierarchical groups [E/N, N] over each expert-DP group."""
    out = []
    for ranks in expert_grid.groups("dp"):
        per = len(ranks) // n
        out += [ranks[j::per] for j in range(per)]
    return out


def test_instance_groups_follow_the_originals_layout():
    checked = 0
    for n, (dense, expert) in _layouts():
        groups = all_group_ranks(dense, expert, None, n)
        ours = sorted(sorted(g) for g in groups["inter-dp-cp"])
        assert ours == sorted(sorted(g) for g in _originals_inter_groups(expert, n))
        world = dense.world_size
        for instance in groups["intra-dist-opt"]:
            assert len(instance) == world // n
            for intra in groups["intra-dp-cp"]:
                # every instance holds whole intra-dp-cp groups, or none of their ranks
                assert set(intra) <= set(instance) or not set(intra) & set(instance)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize(
    "world, sizes, message",
    [
        (8, dict(num_distributed_optimizer_instances=3), r"\(3\) must divide .* size \(8\)"),
        (8, dict(num_distributed_optimizer_instances=0), "must be a positive integer"),
        (
            8,
            dict(tensor_model_parallel_size=2, num_distributed_optimizer_instances=8),
            r"\(8\) must divide the data-parallel x context-parallel size \(4\)",
        ),
    ],
)
def test_an_instance_count_that_does_not_split_dp_cp_fails_in_one_line(world, sizes, message):
    with pytest.raises(ValueError, match=f"--num-distributed-optimizer-instances {message}"):
        _plan(world, **sizes)


def test_instances_without_the_distributed_optimizer_fail_in_one_line():
    with pytest.raises(ValueError, match="> 1 requires --use-distributed-optimizer"):
        DDPConfig(num_distributed_optimizer_instances=2)
    config = DDPConfig(use_distributed_optimizer=True, num_distributed_optimizer_instances=2)
    with pytest.raises(ValueError, match="needs the intra-dp-cp and inter-dp-cp groups"):
        DistributedDataParallel(_mlp(), config, None)


# --- 1. --num-distributed-optimizer-instances: training --------------------------------------


def _train_with_instances(config_kwargs: dict, hidden: int) -> tuple:
    state = ParallelState.build(DistributedConfig(num_distributed_optimizer_instances=2))
    config = DDPConfig(
        use_distributed_optimizer=True, num_distributed_optimizer_instances=2, **config_kwargs
    )
    model = _mlp(seed=dist.get_rank(), hidden=hidden)
    ddp = DistributedDataParallel(
        model,
        config,
        state.group("dp-cp"),
        intra_instance_group=state.group("intra-dp-cp"),
        inter_instance_group=state.group("inter-dp-cp"),
    )
    ddp.broadcast_params()
    opt = DistributedOptimizer(
        _adamw(model.parameters()),
        ddp,
        clip_grad=CLIP,
        grad_stats_group=state.group("intra-dist-opt"),
    )
    with volume.count_bytes() as recorder:
        norms = _train(ddp, opt)
    weights = [p.detach().clone() for p in model.parameters()]
    ranks = {
        name: dist.get_process_group_ranks(state.group(name))
        for name in ("intra-dp-cp", "inter-dp-cp", "intra-dist-opt")
    }
    collectives = sorted({(r.op, r.group_size) for r in recorder.records})
    layout = ddp.grad_buffers[0].layout
    padding = layout.numel - sum(p.numel() for p in model.parameters())
    return norms, weights, opt.state_numel(), padding, ranks, collectives


@pytest.mark.parametrize(
    "config",
    [dict(), dict(overlap_grad_reduce=True, bucket_size=60), dict(average_in_collective=True)],
    ids=["sync", "overlap-grad", "avg-in-coll"],
)
def test_two_instances_of_two_ranks_train_like_one_rank(run_on_ranks, config):
    results = run_on_ranks(_train_with_instances, 4, config, 16)
    _assert_matches_reference(results)
    for rank, (*_, ranks, collectives) in enumerate(results):
        first = 0 if rank < 2 else 2
        assert ranks["intra-dp-cp"] == [first, first + 1]
        assert ranks["inter-dp-cp"] == [rank % 2, rank % 2 + 2]
        assert ranks["intra-dist-opt"] == [first, first + 1]
        # reduce-scatter and all-gather inside the instance, all-reduce across: no 4-rank op.
        ops = {op for op, _ in collectives}
        assert {"reduce_scatter", "all_reduce", "all_gather"} <= ops
        assert all(size == 2 for _, size in collectives)


def test_state_per_rank_is_one_over_dp_per_instance(run_on_ranks):
    hidden = 256  # large enough that padding is small next to the parameters
    results = run_on_ranks(_train_with_instances, 4, dict(), hidden)
    _assert_matches_reference(results, hidden)
    _, _, replicated = _reference(hidden)
    per_rank = [state for _, _, state, *_ in results]
    padding = results[0][3]
    assert sum(per_rank) == 2 * replicated  # each of the 2 instances holds the whole state once
    for state in per_rank:
        assert abs(state - replicated / 2) <= 2 * padding  # dp/N = 2 ranks share an instance


# --- 2. --overlap-param-gather-with-optimizer-step -------------------------------------------


def _train_gather_after_step(with_step: bool) -> tuple:
    config = DDPConfig(
        use_distributed_optimizer=True,
        overlap_grad_reduce=True,
        overlap_param_gather=True,
        overlap_param_gather_with_optimizer_step=with_step,
        bucket_size=60,
    )
    model = _mlp(seed=dist.get_rank())
    ddp = DistributedDataParallel(model, config, dist.group.WORLD)
    ddp.broadcast_params()
    opt = DistributedOptimizer(_adamw(model.parameters()), ddp, clip_grad=CLIP)
    rank, world = dist.get_rank(), dist.get_world_size()
    norms, in_flight, gathers_in_step = [], [], []
    for step in range(STEPS):
        ddp.zero_grad_buffer()
        opt.zero_grad()
        x, y = (t.chunk(world)[rank] for t in _batch(step))
        _loss(ddp, x, y).backward()
        ddp.finish_grad_sync()
        with volume.count_bytes() as recorder:
            success, norm, _ = opt.step()
        assert success
        norms.append(norm)
        gathers_in_step.append(recorder.ops().count("all_gather"))
        in_flight.append(all(s.param_handle is not None for s in ddp.bucket_syncs))
    ddp.disable_forward_pre_hook()
    weights = [p.detach().clone() for p in model.parameters()]
    return norms, weights, len(ddp.bucket_syncs), gathers_in_step, in_flight


def test_gathers_launched_by_the_step_give_the_same_run(run_on_ranks):
    results = run_on_ranks(_train_gather_after_step, 2, True)
    _assert_matches_reference(results)
    for _, _, buckets, gathers, in_flight in results:
        assert buckets == 1  # bucketing is off with the flag, as in the original
        assert gathers == [buckets] * STEPS and all(in_flight)
    # Without the flag the step launches nothing: the next forward's hooks do.
    plain = run_on_ranks(_train_gather_after_step, 2, False)
    _assert_matches_reference(plain)
    for _, _, buckets, gathers, in_flight in plain:
        assert buckets > 1 and gathers == [0] * STEPS and not any(in_flight)


def test_gather_with_the_step_needs_overlap_param_gather():
    with pytest.raises(ValueError, match="requires --overlap-param-gather$"):
        DDPConfig(use_distributed_optimizer=True, overlap_param_gather_with_optimizer_step=True)


# --- 3. --optimizer-cpu-offload --------------------------------------------------------------


def test_offload_takes_pieces_in_order_until_the_fraction_is_reached():
    assert select_offloaded([10, 10, 10, 10], 0.0) == [False] * 4
    assert select_offloaded([10, 10, 10, 10], 0.5) == [True, True, False, False]
    assert select_offloaded([10, 10, 10, 10], 0.3) == [True, True, False, False]  # crosses
    assert select_offloaded([10, 10, 10, 10], 0.01) == [True, False, False, False]
    assert select_offloaded([10, 10, 10, 10], 1.0) == [True] * 4
    with pytest.raises(ValueError, match="--optimizer-offload-fraction must be between 0 and 1"):
        CpuOffloadConfig(fraction=1.5)


def _train_offloaded(fraction: float, bf16: bool) -> tuple:
    config = DDPConfig(use_distributed_optimizer=True, grad_reduce_in_fp32=True)
    model = _mlp(seed=dist.get_rank())
    if bf16:
        model = model.bfloat16()
    ddp = DistributedDataParallel(model, config, dist.group.WORLD)
    ddp.broadcast_params()
    opt = DistributedOptimizer(
        _adamw(model.parameters()),
        ddp,
        clip_grad=CLIP,
        cpu_offload=CpuOffloadConfig(fraction=fraction),
    )
    rank, world = dist.get_rank(), dist.get_world_size()
    norms = []
    for step in range(STEPS):
        ddp.zero_grad_buffer()
        opt.zero_grad()
        x, y = (t.chunk(world)[rank] for t in _batch(step))
        loss = ((ddp(x.to(model[0].weight.dtype)) - y).float() ** 2).mean()
        loss.backward()
        ddp.finish_grad_sync()
        assert opt.step()[0]
        norms.append(opt.get_grad_norm())
    total = sum(m.numel() for m in opt.main_params)
    separate = all(
        main.data_ptr() != piece.of(piece.param.detach()).data_ptr()
        for main, piece, off in zip(opt.main_params, opt.pieces, opt.offloaded, strict=True)
        if off
    )
    state_on_host = all(
        value.device.type == "cpu"
        for main, off in zip(opt.main_params, opt.offloaded, strict=True)
        if off
        for value in opt.optimizer.state[main].values()
    )
    weights = [p.detach().float().clone() for p in model.parameters()]
    largest = max((m.numel() for m, o in zip(opt.main_params, opt.offloaded) if o), default=0)
    return norms, weights, (opt.offloaded_numel(), largest), total, separate, state_on_host


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_offloaded_optimizer_trains_like_the_plain_one(run_on_ranks, fraction):
    results = run_on_ranks(_train_offloaded, 2, fraction, False)
    ref_norms, ref_weights, _ = _reference()
    for _, weights, (offloaded, largest), total, separate, on_host in results:
        for got, want in zip(weights, ref_weights, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        assert separate and on_host
        # pieces are taken until the share is reached: the last one taken may cross the line
        assert offloaded >= fraction * total
        assert offloaded == 0 or offloaded - largest < fraction * total


def test_offloaded_bf16_model_matches_the_device_resident_one(run_on_ranks):
    on_device = run_on_ranks(_train_offloaded, 2, 0.0, True)
    offloaded = run_on_ranks(_train_offloaded, 2, 1.0, True)
    for (norms_a, weights_a, *_), (norms_b, weights_b, *_) in zip(
        on_device, offloaded, strict=True
    ):
        assert norms_a == pytest.approx(norms_b, rel=1e-6)
        for a, b in zip(weights_a, weights_b, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _offloaded_resume() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    def build():
        model = _mlp(seed=dist.get_rank())
        ddp = DistributedDataParallel(
            model, DDPConfig(use_distributed_optimizer=True), dist.group.WORLD
        )
        ddp.broadcast_params()
        offload = CpuOffloadConfig(fraction=0.5)
        return (
            model,
            ddp,
            DistributedOptimizer(_adamw(model.parameters()), ddp, cpu_offload=offload),
        )

    def steps(ddp, opt, which: range) -> None:
        rank, world = dist.get_rank(), dist.get_world_size()
        for step in which:
            ddp.zero_grad_buffer()
            opt.zero_grad()
            x, y = (t.chunk(world)[rank] for t in _batch(step))
            _loss(ddp, x, y).backward()
            ddp.finish_grad_sync()
            opt.step()

    model, ddp, opt = build()
    steps(ddp, opt, range(2))
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(opt.state_dict())
    steps(ddp, opt, range(2, STEPS))
    model2, ddp2, opt2 = build()
    model2.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)
    steps(ddp2, opt2, range(2, STEPS))
    return [p.detach() for p in model.parameters()], [p.detach() for p in model2.parameters()]


def test_an_offloaded_state_dict_resumes_the_same_run(run_on_ranks):
    for straight, resumed in run_on_ranks(_offloaded_resume, 2):
        for a, b in zip(straight, resumed, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.gpu
def test_offload_on_cuda_keeps_the_chosen_state_on_the_host():
    def run(fraction: float) -> tuple[list[torch.Tensor], DistributedOptimizer]:
        model = _mlp().cuda()
        ddp = DistributedDataParallel(model, DDPConfig(use_distributed_optimizer=True), None)
        opt = DistributedOptimizer(
            _adamw(model.parameters()),
            ddp,
            clip_grad=CLIP,
            cpu_offload=CpuOffloadConfig(fraction=fraction, overlap_d2h_h2d=True),
        )
        for step in range(STEPS):
            ddp.zero_grad_buffer()
            opt.zero_grad()
            x, y = (t.cuda() for t in _batch(step))
            _loss(ddp, x, y).backward()
            ddp.finish_grad_sync()
            assert opt.step()[0]
        return [p.detach().cpu() for p in model.parameters()], opt

    plain, _ = run(0.0)
    part, opt = run(0.3)  # of 4 + 64 + 16 + 96 elements: the first two pieces
    for a, b in zip(plain, part, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    devices = {
        (off, value.device.type)
        for main, off in zip(opt.main_params, opt.offloaded, strict=True)
        for value in [main, *opt.optimizer.state[main].values()]
        if value.dim() > 0
    }
    assert devices == {(True, "cpu"), (False, "cuda")}
    assert all(m.is_pinned() for m, off in zip(opt.main_params, opt.offloaded) if off)


# --- 4. --no-gradient-reduce-div-fusion ------------------------------------------------------


def test_fusion_folds_the_division_into_an_nccl_premul_sum(monkeypatch):
    monkeypatch.setattr(reduce_op_module, "group_size", lambda group: 1 if group is None else 4)
    monkeypatch.setattr(reduce_op_module.dist, "get_backend", lambda group: "nccl")
    fused = plan_reduction(DDPConfig(), 0.25, torch.float32, object())
    assert fused.fused_division and fused.pre_scale == 1.0
    assert fused.op == dist.ReduceOp.PREMUL_SUM
    for config, dtype in [
        (DDPConfig(gradient_reduce_div_fusion=False), torch.float32),
        (DDPConfig(), torch.bfloat16),  # as the original: never for bf16 buffers
    ]:
        split = plan_reduction(config, 0.25, dtype, object())
        assert not split.fused_division and split.pre_scale == 0.25
        assert split.op == dist.ReduceOp.SUM


def _grads_with_fusion(fusion: bool) -> tuple[list[torch.Tensor], bool]:
    config = DDPConfig(gradient_reduce_div_fusion=fusion, overlap_grad_reduce=True, bucket_size=60)
    model = _mlp()
    ddp = DistributedDataParallel(model, config, dist.group.WORLD)
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = (t.chunk(world)[rank] for t in _batch(0))
    _loss(ddp, x, y).backward()
    ddp.finish_grad_sync()
    fused = any(s.reduction.fused_division for s in ddp.bucket_syncs)
    return [p.main_grad.clone() for p in model.parameters()], fused


def test_gloo_falls_back_to_a_separate_division_with_the_same_gradients(run_on_ranks):
    with_fusion = run_on_ranks(_grads_with_fusion, 2, True)
    without = run_on_ranks(_grads_with_fusion, 2, False)
    model = _mlp()
    _loss(model, *_batch(0)).backward()
    for (grads_a, fused_a), (grads_b, fused_b) in zip(with_fusion, without, strict=True):
        assert not fused_a and not fused_b  # gloo has no PREMUL_SUM
        for a, b, p in zip(grads_a, grads_b, model.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
            torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-6)
