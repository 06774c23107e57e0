"""The MoE layer: router losses in the backward pass, expert bias, experts, dispatchers."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_moe.config import MoEConfig
from gpt_moe.experts import LocalExperts, swiglu
from gpt_moe.layer import MoEGroups, MoELayer
from gpt_moe.losses import LOAD_BALANCING, Z_LOSS, AuxLosses, switch_load_balancing_loss, z_loss
from gpt_moe.router import TopKRouter, aux_loss_coeff

H, E = 16, 4


def _config(**changes) -> MoEConfig:
    values = dict(num_experts=E, moe_router_topk=2, moe_ffn_hidden_size=8)
    values.update(changes)
    return MoEConfig(**values)


def _layer(config: MoEConfig, aux: AuxLosses | None = None, groups=MoEGroups()) -> MoELayer:
    torch.manual_seed(0)
    layer = MoELayer(config, H, swiglu, gated=True, layer_number=1, aux_losses=aux, groups=groups)
    for param in layer.parameters():
        torch.nn.init.normal_(param, std=0.2)
    return layer


def _reference(layer: MoELayer, hidden: torch.Tensor) -> torch.Tensor:
    """Each token through each of its experts, weighted: the MoE definition, token by token."""
    probs, routing_map = layer.router(hidden)
    flat = hidden.reshape(-1, H)
    out = torch.zeros_like(flat)
    for t in range(flat.shape[0]):
        for e in routing_map[t].nonzero().flatten().tolist():
            expert = layer.experts.local_experts[e]
            out[t] += expert(flat[t : t + 1], probs[t, e].reshape(1))[0]
    return out.reshape(hidden.shape)


def test_the_layer_equals_the_token_by_token_definition():
    layer = _layer(_config())
    hidden = torch.randn(5, 3, H)
    out, bias = layer(hidden)
    assert bias is None
    torch.testing.assert_close(out, _reference(layer, hidden))


@pytest.mark.parametrize("changes", [{}, {"moe_router_topk": 1, "moe_router_pre_softmax": True}])
def test_grouped_gemm_equals_the_expert_loop(changes):
    config = _config(**changes)
    loop, grouped = _layer(config), _layer(_config(moe_grouped_gemm=True, **changes))
    grouped.load_state_dict(loop.state_dict())
    hidden = torch.randn(6, 2, H, requires_grad=True)
    a, _ = loop(hidden)
    b, _ = grouped(hidden)
    torch.testing.assert_close(a, b)
    a.square().sum().backward()
    grad_loop = [p.grad.clone() for p in loop.parameters()]
    b.square().sum().backward()
    for ours, theirs in zip(grouped.parameters(), grad_loop, strict=True):
        torch.testing.assert_close(ours.grad, theirs)


def test_probs_on_input_scales_the_expert_input_instead():
    experts = LocalExperts(1, H, 8, torch.relu, gated=False, apply_probs_on_input=True)
    for param in experts.parameters():
        torch.nn.init.normal_(param)
    tokens, probs = torch.randn(3, H), torch.tensor([0.5, 1.0, 2.0])
    out = experts(tokens, [3], probs)
    expert = experts.local_experts[0]
    torch.testing.assert_close(out, expert(tokens * probs.unsqueeze(-1)))


def test_router_losses_join_the_backward_pass_with_the_main_loss_scale():
    config = _config(moe_aux_loss_coeff=0.1, moe_z_loss_coeff=0.01)
    aux = AuxLosses(num_layers=1, num_moe_layers=1)
    aux.set_scale(0.5)  # e.g. one of two micro-batches
    router = TopKRouter(config, H, layer_number=1, aux_losses=aux)
    torch.nn.init.normal_(router.weight)
    hidden = torch.randn(4, 2, H)
    probs, _ = router(hidden)
    probs.sum().mul(0).backward()  # the main loss contributes nothing here
    got = router.weight.grad.clone()

    router.weight.grad = None
    logits = hidden.reshape(-1, H) @ router.weight.t()
    scores = torch.softmax(logits, dim=-1)
    chosen = torch.zeros_like(scores).scatter(1, scores.topk(2).indices, 1.0)
    balance = switch_load_balancing_loss(scores, chosen.sum(0), 8, 2, E, 0.1)
    z = z_loss(logits, 0.01)
    (0.5 * (balance + z)).backward()
    torch.testing.assert_close(got, router.weight.grad)
    report = aux.report(num_microbatches=1)
    assert list(report) == [Z_LOSS, LOAD_BALANCING]  # the order the original logs them
    # logged without their coefficients
    assert report[LOAD_BALANCING] == pytest.approx(balance.item() / 0.1, rel=1e-5)
    assert report[Z_LOSS] == pytest.approx(z.item() / 0.01, rel=1e-5)


def test_expert_bias_counts_tokens_and_moves_after_the_batch():
    config = _config(
        moe_router_score_function="sigmoid",
        moe_router_enable_expert_bias=True,
        moe_router_bias_update_rate=0.1,
    )
    router = TopKRouter(config, H, layer_number=1)
    with torch.no_grad():
        router.weight.zero_()
        router.weight[0, 0] = 10.0  # every token with a positive first feature picks expert 0
    hidden = torch.ones(3, 2, H)
    _, routing_map = router(hidden)
    assert router.local_tokens_per_expert.tolist() == routing_map.sum(0).float().tolist()
    assert routing_map[:, 0].all()
    router.update_expert_bias()
    # expert 0 got all 6 tokens (mean load 3): its bias falls, an idle expert's rises
    assert router.expert_bias[0].item() == pytest.approx(-0.1)
    assert router.local_tokens_per_expert.sum().item() == 0
    assert (
        "expert_bias" in router.state_dict()
        and "local_tokens_per_expert" not in router.state_dict()
    )


def test_one_coefficient_per_balancing_type():
    config = _config(
        moe_router_load_balancing_type=["aux_loss", "seq_aux_loss"], moe_aux_loss_coeff=[0.1, 0.2]
    )
    assert aux_loss_coeff(config, "aux_loss") == 0.1
    assert aux_loss_coeff(config, "seq_aux_loss") == 0.2
    assert aux_loss_coeff(_config(moe_aux_loss_coeff=0.3), "seq_aux_loss") == 0.0


def _dispatched_on_ranks(kind: str, state: dict, hidden_all: torch.Tensor):
    """Each rank routes its half of the tokens through the layer with expert parallelism 2."""
    rank = dist.get_rank()
    config = _config(moe_token_dispatcher_type=kind)
    layer = MoELayer(
        config, H, swiglu, gated=True, layer_number=1, groups=MoEGroups(expert=dist.group.WORLD)
    )
    local = {k: v for k, v in state.items() if not k.startswith("experts.")}
    for j, expert in enumerate(layer.local_expert_indices):
        for name in ("linear_fc1.weight", "linear_fc2.weight"):
            local[f"experts.local_experts.{j}.{name}"] = state[
                f"experts.local_experts.{expert}.{name}"
            ]
    result = layer.load_state_dict(local, strict=False)
    assert all(key.endswith("_extra_state") for key in result.missing_keys), result
    hidden = hidden_all[:, rank : rank + 1].clone().requires_grad_(True)
    out, _ = layer(hidden)
    out.square().sum().backward()
    grads = {n: p.grad for n, p in layer.named_parameters()}
    return out.detach(), hidden.grad, grads, list(layer.local_expert_indices)


@pytest.mark.parametrize("kind", ["allgather", "alltoall"])
def test_expert_parallel_dispatch_equals_one_rank(run_on_ranks, kind):
    reference = _layer(_config())
    hidden = torch.randn(6, 2, H)
    x = hidden.clone().requires_grad_(True)
    out, _ = reference(x)
    out.square().sum().backward()
    state = {k: v.detach() for k, v in reference.state_dict().items() if v is not None}
    results = run_on_ranks(_dispatched_on_ranks, 2, kind, state, hidden)
    for rank, (ours, grad_in, grads, experts) in enumerate(results):
        torch.testing.assert_close(ours, out.detach()[:, rank : rank + 1])
        torch.testing.assert_close(grad_in, x.grad[:, rank : rank + 1])
        for j, expert in enumerate(experts):
            for name in ("linear_fc1.weight", "linear_fc2.weight"):
                theirs = dict(reference.named_parameters())[
                    f"experts.local_experts.{expert}.{name}"
                ].grad
                # each rank holds its experts' whole gradient (both ranks' tokens)
                torch.testing.assert_close(grads[f"experts.local_experts.{j}.{name}"], theirs)
    router_grad = sum(r[2]["router.weight"] for r in results)
    torch.testing.assert_close(router_grad, reference.router.weight.grad)


def test_router_dtype_fp64_computes_the_logits_in_fp64():
    router = TopKRouter(_config(moe_router_dtype="fp64"), H, layer_number=1)
    torch.nn.init.normal_(router.weight)
    hidden = torch.randn(2, 2, H)
    assert router.gating(hidden).dtype == torch.float64
    probs, _ = router(hidden)
    assert probs.dtype == torch.float64


def test_input_jitter_multiplies_the_input_within_eps_while_training():
    router = TopKRouter(_config(moe_input_jitter_eps=0.1), H, layer_number=1)
    hidden = torch.ones(4, 2, H)
    jittered = router.apply_input_jitter(hidden)
    assert not torch.equal(jittered, hidden)
    assert float(jittered.min()) >= 0.9 and float(jittered.max()) <= 1.1
    router.eval()
    assert torch.equal(router.apply_input_jitter(hidden), hidden)


def test_forced_load_balancing_routes_on_random_logits_but_keeps_the_gradient():
    router = TopKRouter(_config(moe_router_force_load_balancing=True), H, layer_number=1)
    with torch.no_grad():
        router.weight.zero_()
        router.weight[0, 0] = 100.0  # every token would pick expert 0
    hidden = torch.ones(16, 4, H)
    probs, routing_map = router(hidden)
    assert routing_map.sum(0).min() > 0  # the random logits spread the tokens
    probs.sum().backward()
    assert router.weight.grad is not None


def test_capacity_factor_drops_tokens_in_the_layer():
    layer = _layer(_config(moe_expert_capacity_factor=0.5, moe_token_drop_policy="position"))
    hidden = torch.randn(8, 2, H)
    _, routing_map = layer.router(hidden)
    # 16 tokens x top-2 / 4 experts x 0.5 = at most 4 tokens per expert
    assert int(routing_map.sum(0).max()) <= 4
    out, _ = layer(hidden)
    torch.testing.assert_close(out, _reference(layer, hidden))


@pytest.mark.parametrize("counts", [[3, 5, 2], [4, 0, 6]], ids=["grouped-mm", "padded-bmm"])
def test_both_grouped_paths_equal_the_loop_with_gradients(counts):
    """Every expert fed: torch's grouped matmul; an idle expert: the padded batched matmul."""
    torch.manual_seed(1)
    loop = LocalExperts(3, H, 8, swiglu, gated=True)
    grouped = LocalExperts(3, H, 8, swiglu, gated=True, grouped_gemm=True)
    for param in loop.parameters():
        torch.nn.init.normal_(param, std=0.3)
    grouped.load_state_dict(loop.state_dict())
    tokens = torch.randn(sum(counts), H, requires_grad=True)
    probs = torch.rand(sum(counts))
    a = loop(tokens, counts, probs)
    a.square().sum().backward()
    grad_tokens, grads = tokens.grad.clone(), [p.grad.clone() for p in loop.parameters()]
    tokens.grad = None
    b = grouped(tokens, counts, probs)
    torch.testing.assert_close(a, b)
    b.square().sum().backward()
    torch.testing.assert_close(tokens.grad, grad_tokens)
    for ours, theirs in zip(grouped.parameters(), grads, strict=True):
        torch.testing.assert_close(ours.grad, theirs)
