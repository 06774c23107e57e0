"""Param groups, Adam/SGD steps, clipping, zero counting, loss scaling and mixed precision."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.config import (
    DistributedConfig,
    LearningRateConfig,
    OptimizerConfig,
    PrecisionConfig,
)
from gpt_parallel.optim import (
    DynamicGradScaler,
    Float16OptimizerWithFloat16Params,
    FP32Optimizer,
    build_grad_scaler,
    build_optimizer,
    build_param_groups,
    params_l2_norm,
)
from gpt_parallel.parallel_state import ParallelState
from gpt_parallel.schedules import OptimizerParamScheduler, build_scheduler
from torch import nn


def _flags(*, optimizer: str = "adam", **flags: object) -> dict:
    """build_optimizer's arguments from flag dests: each goes to the flag class that owns it."""
    owners = (OptimizerConfig, LearningRateConfig, PrecisionConfig)
    parts = [{k: v for k, v in flags.items() if k in _names(cls)} for cls in owners]
    unknown = set(flags) - set().union(*parts)
    assert not unknown, unknown
    return {
        "config": OptimizerConfig(**parts[0]),
        "learning_rate": LearningRateConfig(**parts[1]),
        "precision": PrecisionConfig(**parts[2]),
        "kind": optimizer,
    }


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.linear = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.output = nn.Linear(3, 10, bias=False)


def _decoupled(name: str, _param) -> bool:
    return name in ("embedding.weight", "output.weight")


def _set_grads(model: nn.Module, seed: int, scale: float = 1.0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = (torch.randn(p.shape, generator=gen) * scale).to(p.dtype)


def test_param_groups_key_on_weight_decay_and_decoupled_lr_in_order_of_appearance():
    groups = build_param_groups(
        Tiny().named_parameters(), lr=1e-3, min_lr=1e-5, decoupled_lr=1e-2, is_decoupled=_decoupled
    )
    keys = [
        (g["wd_mult"], g["lr_mult"], g["is_expert_parallel"], g["is_decoupled_lr"]) for g in groups
    ]
    assert keys == [(1.0, 1.0, False, True), (1.0, 1.0, False, False), (0.0, 1.0, False, False)]
    assert [len(g["params"]) for g in groups] == [2, 1, 3]
    assert (groups[0]["max_lr"], groups[0]["min_lr"]) == (
        1e-2,
        1e-5,
    )  # decoupled min defaults to min
    assert (groups[1]["max_lr"], groups[1]["min_lr"]) == (1e-3, 1e-5)


def test_without_decoupled_lr_the_embedding_shares_the_weight_group():
    groups = build_param_groups(Tiny().named_parameters(), lr=1e-3, is_decoupled=_decoupled)
    assert [len(g["params"]) for g in groups] == [3, 3]
    assert all(not g["is_decoupled_lr"] for g in groups)


def test_weight_decay_is_not_applied_to_biases_and_norms():
    model = Tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model.named_parameters(), **_flags(lr=0.1, weight_decay=0.5))
    OptimizerParamScheduler(opt, 0.0, 0.1, 0.0, 0, 100, "constant", 0.5, 0.5, 100, "constant")
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's update is 0: only decoupled decay moves a weight
    ok, norm, zeros = opt.step()
    assert ok and norm == 0.0 and zeros is None
    for name, p in model.named_parameters():
        if name.endswith(".bias") or p.ndim == 1:
            torch.testing.assert_close(p.detach(), before[name], rtol=0, atol=0)
        else:
            torch.testing.assert_close(p.detach(), before[name] * (1 - 0.1 * 0.5))


def _hand_adamw(params, grads_per_step, lrs, wd, b1=0.9, b2=0.999, eps=1e-8):
    """Textbook AdamW (decoupled decay) in float64."""
    params = [p.double().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g.double()
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            p.mul_(1 - lr * wd[i])
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
    return params


def test_adam_step_equals_a_hand_computed_adamw_step():
    torch.manual_seed(0)
    model = Tiny()
    initial = [p.detach().clone() for p in model.parameters()]
    config = _flags(
        lr=1e-2,
        min_lr=1e-3,
        weight_decay=0.1,
        adam_beta1=0.8,
        adam_beta2=0.95,
        adam_eps=1e-6,
        clip_grad=0.0,
    )
    opt = build_optimizer(model.named_parameters(), **config)
    sched = OptimizerParamScheduler(opt, 0.0, 1e-2, 1e-3, 2, 10, "linear", 0.1, 0.1, 10, "constant")
    grads, lrs = [], []
    for step in range(4):
        _set_grads(model, seed=step)
        grads.append([p.grad.clone() for p in model.parameters()])
        lrs.append(opt.param_groups[0]["lr"])
        assert opt.step()[0]
        sched.step(1)
    wd = [0.0 if p.ndim == 1 else 0.1 for p in model.parameters()]
    config_b = dict(b1=0.8, b2=0.95, eps=1e-6)
    expected = _hand_adamw(initial, grads, lrs, wd, **config_b)
    assert lrs == pytest.approx([0.0, 5e-3, 1e-2, 1e-2 - 9e-3 / 8])
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.detach().double(), e, rtol=1e-6, atol=1e-7)


def test_sgd_uses_momentum_and_coupled_weight_decay():
    model = nn.Linear(3, 2, bias=False)
    w0 = model.weight.detach().clone()
    opt = build_optimizer(
        model.named_parameters(),
        **_flags(lr=0.1, optimizer="sgd", sgd_momentum=0.9, weight_decay=0.01, clip_grad=0.0),
    )
    g1, g2 = torch.full((2, 3), 0.5), torch.full((2, 3), -0.25)
    model.weight.grad = g1.clone()
    opt.step()
    w1 = w0 - 0.1 * (g1 + 0.01 * w0)
    torch.testing.assert_close(model.weight.detach(), w1)
    model.weight.grad = g2.clone()
    opt.step()
    buf = 0.9 * (g1 + 0.01 * w0) + (g2 + 0.01 * w1)
    torch.testing.assert_close(model.weight.detach(), w1 - 0.1 * buf)


def _three_params(*attrs):
    params = [
        nn.Parameter(torch.zeros(2)),
        nn.Parameter(torch.zeros(1)),
        nn.Parameter(torch.zeros(1)),
    ]
    for p, grad in zip(params, ([3.0, 4.0], [12.0], [84.0])):
        p.grad = torch.tensor(grad)
    for index, name, value in attrs:
        setattr(params[index], name, value)
    return params


def _fp32(params, clip_grad=1.0, tp_rank=0, zeros=False):
    inner = torch.optim.SGD(
        [
            {
                "params": params,
                "wd_mult": 1.0,
                "lr_mult": 1.0,
                "is_expert_parallel": False,
                "is_decoupled_lr": False,
            }
        ],
        lr=0.0,
    )
    return FP32Optimizer(inner, clip_grad=clip_grad, tp_rank=tp_rank, log_num_zeros_in_grad=zeros)


def test_clipping_scales_by_clip_over_norm_and_reports_the_norm_before_clipping():
    params = _three_params((2, "shared", True))  # the shared copy is not counted in the norm
    ok, norm, _ = _fp32(params, clip_grad=1.0).step()
    assert ok and norm == pytest.approx(13.0)
    coeff = 1.0 / (13.0 + 1e-6)
    torch.testing.assert_close(params[0].grad, torch.tensor([3.0, 4.0]) * coeff)
    torch.testing.assert_close(params[2].grad, torch.tensor([84.0]) * coeff)  # but it is clipped


def test_no_clipping_when_the_norm_is_below_the_threshold():
    params = _three_params((2, "shared", True))
    _, norm, _ = _fp32(params, clip_grad=20.0).step()
    assert norm == pytest.approx(13.0)
    torch.testing.assert_close(params[1].grad, torch.tensor([12.0]))


def test_tensor_parallel_duplicates_count_only_on_tp_rank_zero():
    params = _three_params((0, "tensor_model_parallel", True), (2, "shared", True))
    assert _fp32(params, clip_grad=1e9, tp_rank=0).step()[1] == pytest.approx(13.0)
    params = _three_params((0, "tensor_model_parallel", True), (2, "shared", True))
    assert _fp32(params, clip_grad=1e9, tp_rank=1).step()[1] == pytest.approx(5.0)


def test_zero_gradients_are_counted_when_asked():
    params = _three_params()
    params[0].grad = torch.tensor([0.0, 4.0])
    params[1].grad = torch.tensor([0.0])
    assert _fp32(params, clip_grad=0.0, zeros=True).step() == (True, None, 2)


def test_params_norm_counts_shared_copies_but_not_tensor_parallel_duplicates():
    params = _three_params((0, "tensor_model_parallel", True), (2, "shared", True))
    for p, value in zip(params, ([3.0, 4.0], [12.0], [84.0])):
        p.data = torch.tensor(value)
    assert _fp32(params, tp_rank=0).params_norm() == pytest.approx(85.0)  # sqrt(13^2 + 84^2)
    assert _fp32(params, tp_rank=1).params_norm() == pytest.approx(5.0)  # replicated ones: rank 0


def test_params_l2_norm_reads_the_fp32_main_param_of_a_bf16_weight():
    weight = nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.bfloat16))
    weight.main_param = torch.tensor([3.0, 4.0])
    assert params_l2_norm([weight]) == pytest.approx(5.0)
    assert params_l2_norm([]) == 0.0


def test_dynamic_loss_scale_follows_hysteresis_window_and_factors():
    scaler = DynamicGradScaler(initial_scale=1024.0, min_scale=1.0, growth_interval=3, hysteresis=2)
    script = [  # found_inf, then (scale, growth tracker, hysteresis tracker) after the update
        (True, 1024.0, 0, 1),  # first overflow uses up hysteresis only
        (True, 512.0, 0, 0),  # second in a row backs off x0.5
        (True, 256.0, 0, -1),  # and every further one too
        (False, 256.0, 1, -1),
        (False, 256.0, 2, -1),
        (False, 512.0, 0, 2),  # a full window of clean steps: x2, hysteresis refilled
        (True, 512.0, 0, 1),
        (False, 512.0, 1, 1),  # a clean step does not refill hysteresis
        (True, 256.0, 0, 0),
    ]
    for found_inf, scale, growth, hysteresis in script:
        scaler.update(found_inf)
        state = scaler.state_dict()
        assert (state["scale"].item(), state["growth_tracker"], state["hysteresis_tracker"]) == (
            scale,
            growth,
            hysteresis,
        )


def test_dynamic_loss_scale_never_drops_below_the_minimum():
    scaler = DynamicGradScaler(initial_scale=4.0, min_scale=2.0, hysteresis=1)
    for _ in range(3):
        scaler.update(True)
    assert scaler.scale.item() == 2.0


def test_fp16_defaults_are_the_originals_and_loss_scale_flag_makes_it_constant():
    scaler = build_grad_scaler(PrecisionConfig(fp16=True), torch.device("cpu"))
    assert (
        scaler.scale.item(),
        scaler.min_scale.item(),
        scaler.growth_interval,
        scaler.hysteresis,
    ) == (
        2.0**32,
        1.0,
        1000,
        2,
    )
    assert (scaler.growth_factor.item(), scaler.backoff_factor.item()) == (2.0, 0.5)
    constant = build_grad_scaler(PrecisionConfig(fp16=True, loss_scale=128.0), torch.device("cpu"))
    constant.update(True)
    assert constant.scale.item() == 128.0 and constant.state_dict() == {}
    assert build_grad_scaler(PrecisionConfig(bf16=True), torch.device("cpu")) is None


def _fp16_linear():
    model = nn.Linear(2, 2).half()
    opt = build_optimizer(
        model.named_parameters(),
        **_flags(lr=0.1, fp16=True, initial_loss_scale=8.0, clip_grad=0.0),
    )
    return model, opt


def test_fp16_overflow_skips_the_step_and_backs_off_after_hysteresis():
    model, opt = _fp16_linear()
    before = [p.detach().clone() for p in model.parameters()]
    for expected_scale in (8.0, 4.0):
        for p in model.parameters():
            p.grad = torch.full_like(p, float("inf"))
        assert opt.step() == (False, None, None)
        assert opt.get_loss_scale().item() == expected_scale
        for p, b in zip(model.parameters(), before):
            assert torch.equal(p.detach(), b)


def test_fp16_step_unscales_gradients_before_the_update():
    model, opt = _fp16_linear()
    reference = copy.deepcopy(model).float()
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=0.1, weight_decay=0.01)
    grads = [torch.full(p.shape, 0.25) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = (g * opt.get_loss_scale().item()).half()  # backward of a scaled loss
    for p, g in zip(reference.parameters(), grads):
        p.grad = g.clone()
    ok, norm, zeros = opt.step()
    ref_opt.step()
    assert ok and norm == 0.0 and zeros == 0  # fp16 reports 0 when clipping/counting are off
    for p, r in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p.main_param, r.detach())
        assert torch.equal(p.detach(), r.detach().half())


def test_bf16_model_keeps_fp32_main_params_that_accumulate_small_updates():
    torch.manual_seed(0)
    model = nn.Linear(4, 4, bias=False).bfloat16()
    (weight,) = model.parameters()
    reference = weight.detach().float().clone().requires_grad_()
    opt = build_optimizer(model.named_parameters(), **_flags(lr=1e-4, bf16=True))
    assert isinstance(opt, Float16OptimizerWithFloat16Params) and opt.grad_scaler is None
    assert weight.main_param.dtype == torch.float32
    ref_opt = torch.optim.AdamW([reference], lr=1e-4, weight_decay=0.01)
    for step in range(5):
        _set_grads(model, seed=step, scale=0.01)
        reference.grad = weight.grad.float()
        ok, norm, _ = opt.step()
        assert ok and math.isfinite(norm)
        ref_opt.step()
    # The fp32 main param took exactly the fp32 AdamW updates; the model holds its bf16 rounding.
    assert torch.equal(weight.main_param.detach(), reference.detach())
    assert torch.equal(weight.detach(), weight.main_param.detach().bfloat16())
    assert not torch.equal(
        weight.main_param.detach().bfloat16().float(), weight.main_param.detach()
    )


def _trained(config: OptimizerConfig, dtype=torch.float32):
    torch.manual_seed(1)
    model = Tiny().to(dtype)
    opt = build_optimizer(model.named_parameters(), **config)
    for step in range(2):
        _set_grads(model, seed=10 + step)
        opt.step()
    return model, opt


@pytest.mark.parametrize(
    ("config", "dtype"),
    [
        (_flags(lr=1e-2), torch.float32),
        (_flags(lr=1e-2, optimizer="sgd"), torch.float32),
        (_flags(lr=1e-2, bf16=True), torch.bfloat16),
        (_flags(lr=1e-2, fp16=True, initial_loss_scale=1.0), torch.float16),
    ],
)
def test_state_dict_round_trip_resumes_the_same_trajectory(config, dtype):
    model, opt = _trained(config, dtype)
    state = pickle.loads(pickle.dumps(opt.state_dict()))
    if config["precision"].fp16:
        assert set(state) == {"optimizer", "grad_scaler", "fp32_from_fp16_params"}
    elif config["precision"].bf16:
        assert set(state) == {"optimizer", "fp32_from_fp16_params"}
    else:
        assert set(state) == {"state", "param_groups"}
    resumed_model = copy.deepcopy(model)
    resumed = build_optimizer(resumed_model.named_parameters(), **config)
    resumed.load_state_dict(state)
    for m, o in ((model, opt), (resumed_model, resumed)):
        _set_grads(m, seed=99)
        o.step()
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)


def test_loading_groups_that_do_not_match_fails_with_the_missing_key():
    _, opt = _trained(_flags(lr=1e-2))
    state = opt.state_dict()
    state["param_groups"][1]["wd_mult"] = 0.5
    other = build_optimizer(Tiny().named_parameters(), **_flags(lr=1e-2))
    with pytest.raises(
        ValueError, match=r"no optimizer param group with key \(0.0, 1.0, False, False\)"
    ):
        other.load_state_dict(state)


class _Stub:
    """Stands in for the original's enums when unpickling its checkpoint."""

    def __init__(self, *args, **kwargs) -> None:
        self.args = args

    def __setstate__(self, state) -> None:
        self.state = state


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Stub,), {})


def _load_golden(golden_dir: Path, case: str) -> dict:
    path = golden_dir / "checkpoints" / case / "iter_0000001" / "mp_rank_00" / "model_optim_rng.pt"
    module = types.SimpleNamespace(
        Unpickler=_StubUnpickler, load=pickle.load, __name__="stub_pickle"
    )
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)


def test_the_originals_optimizer_and_scheduler_state_load_into_ours(golden_dir: Path):
    checkpoint = _load_golden(golden_dir, "gpt")
    saved = checkpoint["optimizer"]
    shapes = {i: s["exp_avg"].shape for i, s in saved["state"].items()}
    # Rebuild parameters of the same shapes in the saved groups' order: 2-D weights, then 1-D.
    named = [(f"p{i}", nn.Parameter(torch.zeros(shapes[i]))) for i in sorted(shapes)]
    config = _flags(lr=5e-3, min_lr=5e-4)
    opt = build_optimizer(named, **config)
    assert [len(g["params"]) for g in opt.param_groups] == [
        len(g["params"]) for g in saved["param_groups"]
    ]
    opt.load_state_dict(saved)
    first = named[0][1]
    assert torch.equal(opt.state[first]["exp_avg"], saved["state"][0]["exp_avg"])

    sched_config = LearningRateConfig(
        lr=5e-3, min_lr=5e-4, lr_decay_style="cosine", lr_warmup_iters=2
    )
    with pytest.raises(ValueError, match="--override-opt_param-scheduler"):
        build_scheduler(
            opt, sched_config, OptimizerConfig(), global_batch_size=8, train_iters=10
        ).load_state_dict(checkpoint["opt_param_scheduler"])
    taking = LearningRateConfig(
        lr=5e-3,
        min_lr=5e-4,
        lr_decay_style="cosine",
        lr_warmup_iters=2,
        use_checkpoint_opt_param_scheduler=True,
    )
    sched = build_scheduler(opt, taking, OptimizerConfig(), global_batch_size=8, train_iters=10)
    sched.load_state_dict(checkpoint["opt_param_scheduler"])
    assert (sched.max_lr, sched.num_steps, sched.lr_decay_style) == (0.0, 8, "linear")


def _norm_and_overflow_on_two_ranks() -> tuple[float, tuple, float]:
    ps = ParallelState.build(DistributedConfig(tensor_model_parallel_size=2))
    rank = dist.get_rank()
    shard = nn.Parameter(torch.zeros(2))
    shard.tensor_model_parallel = True
    replicated = nn.Parameter(torch.zeros(1))
    shard.grad = torch.tensor([3.0, 4.0]) * (rank + 1)  # rank 0: [3, 4]; rank 1: [6, 8]
    replicated.grad = torch.tensor([12.0])
    opt = build_optimizer(
        [("shard", shard), ("replicated", replicated)],
        **_flags(lr=0.0, clip_grad=1e9),
        grad_stats_group=ps.group("tp-pp"),
        tp_rank=ps.tp_rank,
    )
    norm = opt.step()[1]
    half = nn.Parameter(torch.zeros(2, dtype=torch.float16))
    half.grad = torch.tensor([1.0, float("inf") if rank == 1 else 1.0], dtype=torch.float16)
    fp16 = build_optimizer(
        [("half", half)], **_flags(lr=0.1, fp16=True), grad_stats_group=ps.group("tp-pp")
    )
    return norm, fp16.step(), fp16.get_loss_scale().item()


def test_grad_norm_and_overflow_are_reduced_over_the_model_parallel_group(run_on_ranks):
    results = run_on_ranks(_norm_and_overflow_on_two_ranks, 2)
    expected_norm = math.sqrt(3**2 + 4**2 + 6**2 + 8**2 + 12**2)  # the replicated grad once
    for norm, step, scale in results:
        assert norm == pytest.approx(expected_norm)
        assert step == (False, None, None)  # rank 1's overflow skips the step on both ranks
        assert scale == 2.0**32
