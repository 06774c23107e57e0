"""Tensor/sequence-parallel mappings, vocab-parallel cross-entropy and the byte counter.

Every multi-rank check computes, on each gloo rank, a layer split with the mappings, and
compares it with the same layer computed on one rank from the same seeded tensors (float64,
so agreement is to rounding). The byte counter is checked against the ring's closed form.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from gpt_parallel.tensor_parallel import (
    copy_to_tensor_parallel_region,
    count_bytes,
    gather_from_sequence_parallel_region,
    gather_from_tensor_parallel_region,
    reduce_from_tensor_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
    scatter_to_sequence_parallel_region,
    scatter_to_tensor_parallel_region,
    theoretical_bytes,
    vocab_parallel_cross_entropy,
    vocab_range,
)
from gpt_parallel.tensor_parallel.comm_bytes import CommRecord, ring_bytes_sent

SEQ, BATCH, HIDDEN, FFN = 8, 2, 6, 12


def _inputs(dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """The same tensors on every rank and in the parent (seeded)."""
    gen = torch.Generator().manual_seed(1234)
    draw = lambda *shape: torch.randn(*shape, generator=gen, dtype=dtype)  # noqa: E731
    return {
        "x": draw(SEQ, BATCH, HIDDEN),
        "w1": draw(FFN, HIDDEN),  # column-parallel: rows (outputs) are split
        "w2": draw(HIDDEN, FFN),  # row-parallel: columns (inputs) are split
        "g_ffn": draw(SEQ, BATCH, FFN),  # upstream gradients
        "g_hidden": draw(SEQ, BATCH, HIDDEN),
    }


def _records(recorder) -> list[tuple[str, int]]:
    return [(r.op, r.size_bytes) for r in recorder.records]


# ---- column- and row-parallel linears ------------------------------------------------------


def _column_parallel_linear() -> dict:
    t, group = _inputs(), dist.group.WORLD
    rank, n = dist.get_rank(), dist.get_world_size()
    x = t["x"].clone().requires_grad_()
    w = t["w1"].chunk(n, 0)[rank].clone().requires_grad_()
    with count_bytes() as forward:
        y = gather_from_tensor_parallel_region(
            copy_to_tensor_parallel_region(x, group) @ w.T, group
        )
    with count_bytes() as backward:
        (y * t["g_ffn"]).sum().backward()
    return {"y": y.detach(), "dx": x.grad, "dw": w.grad, "fwd": forward, "bwd": backward}


def _row_parallel_linear() -> dict:
    t, group = _inputs(), dist.group.WORLD
    rank, n = dist.get_rank(), dist.get_world_size()
    w = t["w2"].chunk(n, 1)[rank].clone().requires_grad_()
    xf = t["g_ffn"].clone().requires_grad_()  # an unsplit [s, b, ffn] input
    with count_bytes() as forward:
        y = reduce_from_tensor_parallel_region(
            scatter_to_tensor_parallel_region(xf, group) @ w.T, group
        )
    with count_bytes() as backward:
        (y * t["g_hidden"]).sum().backward()
    return {"y": y.detach(), "dx": xf.grad, "dw": w.grad, "fwd": forward, "bwd": backward}


@pytest.mark.parametrize("world", [2, 4])
def test_column_parallel_linear_from_copy_and_gather_matches_the_full_linear(run_on_ranks, world):
    t = _inputs()
    x, w = t["x"].clone().requires_grad_(), t["w1"].clone().requires_grad_()
    y = x @ w.T
    (y * t["g_ffn"]).sum().backward()
    results = run_on_ranks(_column_parallel_linear, world)
    for rank, res in enumerate(results):
        torch.testing.assert_close(res["y"], y.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res["dx"], x.grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res["dw"], w.grad.chunk(world, 0)[rank], rtol=1e-12, atol=0)
        assert _records(res["fwd"]) == [("all_gather", y.numel() * 8)]
        assert _records(res["bwd"]) == [("all_reduce", x.numel() * 8)]


@pytest.mark.parametrize("world", [2, 4])
def test_row_parallel_linear_from_scatter_and_reduce_matches_the_full_linear(run_on_ranks, world):
    t = _inputs()
    xf, w = t["g_ffn"].clone().requires_grad_(), t["w2"].clone().requires_grad_()
    y = xf @ w.T
    (y * t["g_hidden"]).sum().backward()
    results = run_on_ranks(_row_parallel_linear, world)
    for rank, res in enumerate(results):
        torch.testing.assert_close(res["y"], y.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res["dx"], xf.grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res["dw"], w.grad.chunk(world, 1)[rank], rtol=1e-12, atol=0)
        assert _records(res["fwd"]) == [("all_reduce", y.numel() * 8)]
        assert _records(res["bwd"]) == [("all_gather", xf.numel() * 8)]


# ---- a sequence-parallel MLP ---------------------------------------------------------------


def _mlp(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x @ w1.T) @ w2.T


def _sequence_parallel_mlp() -> dict:
    t, group = _inputs(), dist.group.WORLD
    rank, n = dist.get_rank(), dist.get_world_size()
    x = t["x"].clone().requires_grad_()
    w1 = t["w1"].chunk(n, 0)[rank].clone().requires_grad_()
    w2 = t["w2"].chunk(n, 1)[rank].clone().requires_grad_()
    with count_bytes() as forward:
        local = scatter_to_sequence_parallel_region(x, group)  # [s/n, b, h]
        full = gather_from_sequence_parallel_region(local, group)  # [s, b, h]
        out = reduce_scatter_to_sequence_parallel_region(_mlp(full, w1, w2), group)
    with count_bytes() as backward:
        (out * t["g_hidden"].chunk(n, 0)[rank]).sum().backward()
    return {
        "local": local.detach(),
        "out": out.detach(),
        "dx": x.grad,
        "dw1": w1.grad,
        "dw2": w2.grad,
        "fwd": forward,
        "bwd": backward,
    }


@pytest.mark.parametrize("world", [2, 4])
def test_sequence_parallel_mlp_from_gather_and_reduce_scatter_matches_one_rank(run_on_ranks, world):
    t = _inputs()
    x, w1, w2 = (t[k].clone().requires_grad_() for k in ("x", "w1", "w2"))
    out = _mlp(x, w1, w2)
    (out * t["g_hidden"]).sum().backward()
    s_bytes = x.numel() * 8  # [s, b, h] in float64, both at the gather and the reduce-scatter
    results = run_on_ranks(_sequence_parallel_mlp, world)
    for rank, res in enumerate(results):
        torch.testing.assert_close(res["local"], t["x"].chunk(world, 0)[rank], rtol=0, atol=0)
        torch.testing.assert_close(res["out"], out.detach().chunk(world, 0)[rank])
        torch.testing.assert_close(res["dx"], x.grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res["dw1"], w1.grad.chunk(world, 0)[rank])
        torch.testing.assert_close(res["dw2"], w2.grad.chunk(world, 1)[rank])
        assert _records(res["fwd"]) == [("all_gather", s_bytes), ("reduce_scatter", s_bytes)]
        assert _records(res["bwd"]) == [
            ("all_gather", s_bytes),  # reduce-scatter's adjoint
            ("reduce_scatter", s_bytes),  # gather's adjoint (tensor-parallel output grad)
            ("all_gather", s_bytes),  # scatter's adjoint
        ]


def _sequence_gather_grads() -> dict:
    t, group = _inputs(), dist.group.WORLD
    rank, n = dist.get_rank(), dist.get_world_size()
    grads = {}
    for reduce_grad in (True, False):
        local = t["x"].chunk(n, 0)[rank].clone().requires_grad_()
        full = gather_from_sequence_parallel_region(local, group, reduce_grad)
        # The same upstream gradient on every rank, as after a replicated computation.
        (full * t["g_hidden"]).sum().backward()
        grads[reduce_grad] = (full.detach(), local.grad)
    return grads


@pytest.mark.parametrize("world", [2, 4])
def test_sequence_gather_reduce_scatters_its_grad_unless_told_the_grad_is_whole(
    run_on_ranks, world
):
    t = _inputs()
    for rank, grads in enumerate(run_on_ranks(_sequence_gather_grads, world)):
        upstream = t["g_hidden"].chunk(world, 0)[rank]
        for full, _ in grads.values():
            torch.testing.assert_close(full, t["x"], rtol=0, atol=0)
        torch.testing.assert_close(grads[True][1], world * upstream)
        torch.testing.assert_close(grads[False][1], upstream, rtol=0, atol=0)


def _split_error() -> str:
    try:
        scatter_to_sequence_parallel_region(torch.zeros(3, 2), dist.group.WORLD)
    except ValueError as error:
        return str(error)
    return "no error"


def test_a_sequence_that_does_not_split_over_the_ranks_fails_with_one_line(run_on_ranks):
    for message in run_on_ranks(_split_error, 2):
        assert message == (
            "dimension 0 of a tensor of shape (3, 2) has size 3, "
            "which does not split over 2 tensor-parallel ranks"
        )


# ---- identity without a group ---------------------------------------------------------------

_ALL_MAPPINGS = (
    copy_to_tensor_parallel_region,
    reduce_from_tensor_parallel_region,
    scatter_to_tensor_parallel_region,
    gather_from_tensor_parallel_region,
    scatter_to_sequence_parallel_region,
    gather_from_sequence_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
)


def _check_identity(group) -> int:
    """Each mapping returns its input (same object, no autograd node, no traffic)."""
    x = torch.randn(4, 2, 6, requires_grad=True)
    with count_bytes() as recorder:
        for mapping in _ALL_MAPPINGS:
            y = mapping(x, group)
            assert y is x, mapping.__name__
            (y * 2).sum().backward()
            assert torch.equal(x.grad, torch.full_like(x, 2.0)), mapping.__name__
            x.grad = None
    assert recorder.records == []
    return len(_ALL_MAPPINGS)


def _identity_on_one_rank_groups() -> int:
    singles = [dist.new_group([r]) for r in range(dist.get_world_size())]
    return _check_identity(singles[dist.get_rank()])


def test_every_mapping_is_the_identity_for_a_group_of_none():
    assert _check_identity(None) == 7


def test_every_mapping_is_the_identity_for_a_group_of_one_rank(run_on_ranks):
    assert run_on_ranks(_identity_on_one_rank_groups, 2) == [7, 7]


# ---- vocab-parallel cross-entropy ----------------------------------------------------------

VOCAB = 16


def _ce_inputs(world: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits [s, b, V], targets covering every shard's first and last row, upstream grads."""
    gen = torch.Generator().manual_seed(99)
    logits = (3 * torch.randn(5, 2, VOCAB, generator=gen, dtype=torch.float64)).to(dtype)
    part = VOCAB // world
    edges = sorted({e for r in range(world) for e in (r * part, (r + 1) * part - 1)})
    target = torch.tensor((edges + [5, 9, 3] * 4)[:10]).view(5, 2)
    grad = torch.rand(5, 2, generator=gen, dtype=torch.float64).to(dtype)
    return logits, target, grad


def _vocab_parallel_ce(dtype: torch.dtype, label_smoothing: float) -> dict:
    rank, n = dist.get_rank(), dist.get_world_size()
    logits, target, grad = _ce_inputs(n, dtype)
    shard = logits.chunk(n, -1)[rank].clone().requires_grad_()
    before = shard.detach().clone()
    with count_bytes() as forward:
        loss = vocab_parallel_cross_entropy(shard, target, dist.group.WORLD, label_smoothing)
    with count_bytes() as backward:
        (loss * grad).sum().backward()
    assert torch.equal(shard.detach(), before), "the caller's logits were modified"
    return {"loss": loss.detach(), "grad": shard.grad, "fwd": forward, "bwd": backward}


def _reference_ce(dtype: torch.dtype, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    logits, target, grad = _ce_inputs(world, dtype)
    logits.requires_grad_()
    loss = F.cross_entropy(logits.view(-1, VOCAB), target.view(-1), reduction="none").view(5, 2)
    (loss * grad).sum().backward()
    return loss.detach(), logits.grad


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize(
    "dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)], ids=["f64", "f32"]
)
def test_vocab_parallel_cross_entropy_matches_torch_on_the_full_logits(
    run_on_ranks, world, dtype, tol
):
    loss, grad = _reference_ce(dtype, world)
    results = run_on_ranks(_vocab_parallel_ce, world, dtype, 0.0)
    for res in results:
        assert res["loss"].dtype == dtype
        torch.testing.assert_close(res["loss"], loss, rtol=tol, atol=tol)
    full_grad = torch.cat([res["grad"] for res in results], dim=-1)
    torch.testing.assert_close(full_grad, grad, rtol=tol, atol=tol)
    tokens_bytes = loss.numel() * loss.element_size()
    for res in results:  # max, target logit, sum of exponentials; nothing in backward
        assert _records(res["fwd"]) == [("all_reduce", tokens_bytes)] * 3
        assert res["bwd"].records == []


def _smoothed_reference(world: int, rank: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's smoothed loss on rank ``rank``: the uniform term over its own shard."""
    logits, target, grad = _ce_inputs(world, torch.float64)
    logits.requires_grad_()
    part = VOCAB // world
    log_probs = torch.log_softmax(logits, dim=-1)
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    smoothing = alpha * part / (part - 1)
    loss = (1 - smoothing) * nll - smoothing * log_probs[..., rank * part : (rank + 1) * part].mean(
        -1
    )
    (loss * grad).sum().backward()
    return loss.detach(), logits.grad[..., rank * part : (rank + 1) * part]


@pytest.mark.parametrize("world", [2, 4])
def test_label_smoothing_matches_the_originals_per_shard_formula(run_on_ranks, world):
    results = run_on_ranks(_vocab_parallel_ce, world, torch.float64, 0.1)
    for rank, res in enumerate(results):
        loss, grad = _smoothed_reference(world, rank, 0.1)
        torch.testing.assert_close(res["loss"], loss, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res["grad"], grad, rtol=1e-12, atol=1e-12)


def test_label_smoothing_on_one_rank_is_torchs_with_alpha_spread_over_the_other_classes():
    logits, target, grad = _ce_inputs(1, torch.float64)
    mine = logits.clone().requires_grad_()
    ref = logits.clone().requires_grad_()
    loss = vocab_parallel_cross_entropy(mine, target, None, label_smoothing=0.1)
    alpha = 0.1 * VOCAB / (VOCAB - 1)
    expected = F.cross_entropy(
        ref.view(-1, VOCAB), target.view(-1), reduction="none", label_smoothing=alpha
    ).view(5, 2)
    (loss * grad).sum().backward()
    (expected * grad).sum().backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-12, atol=1e-12)


def test_cross_entropy_on_half_logits_computes_in_fp32_and_returns_a_half_grad():
    logits, target, _ = _ce_inputs(1, torch.float32)
    half = logits.to(torch.bfloat16).requires_grad_()
    loss = vocab_parallel_cross_entropy(half, target, None)
    expected = F.cross_entropy(half.float().view(-1, VOCAB), target.view(-1), reduction="none")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected.view(5, 2))
    loss.sum().backward()
    assert half.grad.dtype == torch.bfloat16


def test_cross_entropy_backward_twice_fails_with_one_line():
    logits, target, _ = _ce_inputs(1, torch.float64)
    logits.requires_grad_()
    loss = vocab_parallel_cross_entropy(logits, target, None).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward may run only once"):
        loss.backward()


def test_cross_entropy_rejects_bad_arguments_with_one_line():
    logits, target, _ = _ce_inputs(1, torch.float64)
    with pytest.raises(ValueError, match=r"target shape \(10,\) must be"):
        vocab_parallel_cross_entropy(logits, target.view(-1), None)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        vocab_parallel_cross_entropy(logits, target, None, label_smoothing=1.0)


def test_vocab_range_gives_each_rank_its_contiguous_rows():
    assert [vocab_range(16, r, 4) for r in range(4)] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert vocab_range(16, 0, 1) == (0, 16)
    with pytest.raises(ValueError, match="vocabulary size 10 does not split over 4"):
        vocab_range(10, 0, 4)


# ---- the byte counter ------------------------------------------------------------------------


def test_theoretical_bytes_are_the_ring_volumes():
    assert theoretical_bytes("all_reduce", 1024, 4) == 2 * 3 / 4 * 1024
    assert theoretical_bytes("all_gather", 1024, 4) == 768
    assert theoretical_bytes("reduce_scatter", 1024, 2) == 512
    assert theoretical_bytes("all_reduce", 1024, 1) == 0
    with pytest.raises(ValueError, match="unknown collective 'broadcast'"):
        theoretical_bytes("broadcast", 8, 2)


@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter"])
@pytest.mark.parametrize("world", [2, 3, 4, 8])
def test_simulated_ring_sends_the_theoretical_bytes(op, world):
    even = [ring_bytes_sent(op, 24 * world, 4, world, r) for r in range(world)]
    assert even == [theoretical_bytes(op, 24 * world * 4, world)] * world
    # Uneven chunks: ranks send different amounts, but their mean is still the closed form.
    numel = 24 * world + 1
    uneven = [ring_bytes_sent(op, numel, 2, world, r) for r in range(world)]
    assert sum(uneven) / world == pytest.approx(theoretical_bytes(op, numel * 2, world))


def _counted_traffic() -> list[CommRecord]:
    t, group = _inputs(torch.float32), dist.group.WORLD
    x = t["x"].clone().requires_grad_()
    with count_bytes() as outer:
        y = gather_from_tensor_parallel_region(copy_to_tensor_parallel_region(x, group), group)
        with count_bytes() as inner:
            z = reduce_scatter_to_sequence_parallel_region(y, group)
        z.sum().backward()
    assert len(inner.records) == 1
    return outer.records


@pytest.mark.parametrize("world", [2, 4])
def test_counted_bytes_of_each_mapping_agree_with_the_ring_volume(run_on_ranks, world):
    t = _inputs(torch.float32)
    s_x = t["x"].numel() * 4
    s_y = s_x * world  # the gathered last dim
    expected = [
        ("all_gather", s_y),  # gather_from_tensor_parallel_region forward
        ("reduce_scatter", s_y),  # reduce_scatter_to_sequence_parallel_region forward
        ("all_gather", s_y),  # ... its backward
        ("all_reduce", s_x),  # copy_to_tensor_parallel_region backward (gather's is a slice)
    ]
    for records in run_on_ranks(_counted_traffic, world):
        assert [(r.op, r.size_bytes) for r in records] == expected
        for r in records:
            assert r.group_size == world
            assert r.sent_bytes == theoretical_bytes(r.op, r.size_bytes, world)


def test_nothing_is_recorded_outside_a_count_bytes_block():
    from gpt_parallel.tensor_parallel import comm_bytes

    with count_bytes() as recorder:
        comm_bytes.record("all_gather", 8, 4, 2, 0)
    comm_bytes.record("all_gather", 8, 4, 2, 0)  # no recorder installed: dropped
    assert recorder.records == [CommRecord("all_gather", 32, 2, 16)]
    assert recorder.sent_bytes == 16
    assert comm_bytes._installed == []
