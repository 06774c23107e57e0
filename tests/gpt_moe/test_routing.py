"""Routing math against small tables worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from gpt_moe import routing
from gpt_moe.losses import sequence_load_balancing_loss, switch_load_balancing_loss, z_loss

LOGITS = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 5.0, 1.0]])


def _softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_topk_softmax_after_selection_weights_the_chosen_logits_only():
    probs, routing_map = routing.topk_routing(LOGITS, 2)
    # token 0 picks experts 1 (3.0) and 2 (2.0): softmax([3, 2]); token 1 picks 2 (5) and 3 (1)
    a, b = _softmax([3.0, 2.0])
    c, d = _softmax([5.0, 1.0])
    expected = torch.tensor([[0.0, a, b, 0.0], [0.0, 0.0, c, d]])
    torch.testing.assert_close(probs, expected)
    assert routing_map.tolist() == [[False, True, True, False], [False, False, True, True]]


def test_topk_pre_softmax_keeps_the_full_softmax_weights():
    probs, _ = routing.topk_routing(LOGITS, 2, pre_softmax=True)
    full0 = _softmax([1.0, 3.0, 2.0, 0.0])
    full1 = _softmax([0.0, 0.0, 5.0, 1.0])
    expected = torch.tensor([[0.0, full0[1], full0[2], 0.0], [0.0, 0.0, full1[2], full1[3]]])
    torch.testing.assert_close(probs, expected)


def test_topk_scaling_factor_multiplies_the_weights():
    probs, _ = routing.topk_routing(LOGITS, 2, pre_softmax=True, scaling_factor=2.5)
    plain, _ = routing.topk_routing(LOGITS, 2, pre_softmax=True)
    torch.testing.assert_close(probs, plain * 2.5)


def test_group_limited_routing_only_picks_from_the_best_groups():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.45, 0.2, 0.3]])
    # 3 groups of 2: sums of the best 1 (topk 2 // group_topk 2) -> 0.9, 0.5, 0.3 -> groups 0, 1
    probs, routing_map = routing.topk_routing(
        scores, 2, pre_softmax=False, num_groups=3, group_topk=2
    )
    assert routing_map.tolist() == [[True, False, True, False, False, False]]
    # with group_topk 1 only group 0 is allowed: experts 0 and 1
    _, only_first = routing.topk_routing(scores, 2, num_groups=3, group_topk=1)
    assert only_first.tolist() == [[True, True, False, False, False, False]]
    assert probs.sum().item() == pytest.approx(1.0)


def test_sigmoid_routing_with_expert_bias_chooses_on_the_biased_scores():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    bias = torch.tensor([0.0, 0.0, 0.0, 0.9])
    probs, routing_map = routing.topk_routing(logits, 2, score_function="sigmoid", expert_bias=bias)
    s = torch.sigmoid(logits)[0]
    # sigmoid + bias: 0.881, 0.731, 0.5, 0.269 + 0.9 = 1.169 -> experts 3 and 0
    assert routing_map.tolist() == [[True, False, False, True]]
    # the weights are the unbiased scores, normalised
    total = s[0] + s[3]
    torch.testing.assert_close(
        probs[0], torch.stack([s[0] / total, 0 * s[1], 0 * s[2], s[3] / total])
    )


def test_expert_bias_update_moves_toward_the_mean_load():
    counts = torch.tensor([10.0, 2.0, 4.0, 4.0])  # mean 5
    bias = torch.tensor([0.0, 0.1, 0.0, -0.1])
    updated = routing.updated_expert_bias(counts, bias, 0.01)
    torch.testing.assert_close(updated, torch.tensor([-0.01, 0.11, 0.01, -0.09]))


def test_capacity_drops_the_lowest_weights_with_policy_probs():
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.9, 0.1], [0.2, 0.8]])
    routing_map = torch.ones(4, 2, dtype=torch.bool)
    # capacity = ceil(4 tokens * top-1 / 2 experts * 1.0) = 2 per expert
    kept_probs, kept = routing.drop_tokens(probs, routing_map, 1, 1.0, "probs")
    assert kept.tolist() == [[False, True], [True, False], [True, False], [False, True]]
    torch.testing.assert_close(kept_probs, probs * kept)


def test_capacity_drops_the_last_tokens_with_policy_position():
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.9, 0.1], [0.2, 0.8]])
    routing_map = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=torch.bool)
    _, kept = routing.drop_tokens(probs, routing_map, 1, 1.0, "position")
    # expert 0 takes tokens 0 and 1 (token 2 comes last), expert 1 its only token 3
    assert kept.tolist() == [[True, False], [True, False], [False, False], [False, True]]


def test_pad_to_capacity_gives_every_expert_exactly_capacity_rows():
    probs = torch.tensor([[0.6, 0.0], [0.7, 0.0], [0.9, 0.0], [0.0, 0.8]])
    routing_map = probs > 0
    kept_probs, kept = routing.drop_tokens(probs, routing_map, 1, 1.0, "probs", True)
    assert kept.sum(dim=0).tolist() == [2, 2]
    assert kept_probs[:, 0].tolist() == [0.0, pytest.approx(0.7), pytest.approx(0.9), 0.0]


def test_pad_routing_map_rounds_each_expert_up():
    routing_map = torch.tensor([[1, 0], [1, 0], [0, 0], [0, 1]], dtype=torch.bool)
    padded = routing.pad_routing_map(routing_map, 4)
    assert padded.sum(dim=0).tolist() == [4, 4]
    assert bool((padded | ~routing_map).all())


def test_switch_aux_loss_by_hand():
    # 2 tokens, 2 experts, top-1; scores sum per expert: [1.0, 1.0]; tokens per expert [1, 1]
    scores = torch.tensor([[0.75, 0.25], [0.25, 0.75]])
    loss = switch_load_balancing_loss(scores, torch.tensor([1.0, 1.0]), 2, 1, 2, 0.1)
    # sum(P * f) * E * coeff / (k * T * T) = (1 + 1) * 2 * 0.1 / (1 * 4) = 0.1
    assert loss.item() == pytest.approx(0.1)
    skewed = switch_load_balancing_loss(scores, torch.tensor([2.0, 0.0]), 2, 1, 2, 0.1)
    assert skewed.item() == pytest.approx(0.1)  # (2 * 1) * 2 * 0.1 / 4


def test_sequence_aux_loss_is_the_mean_of_per_sequence_losses():
    torch.manual_seed(0)
    s, b, e, k = 3, 2, 4, 2
    scores = torch.softmax(torch.randn(s * b, e), dim=-1)
    routing_map = torch.zeros(s * b, e, dtype=torch.bool).scatter(1, scores.topk(k).indices, True)
    counts = routing_map.reshape(s, -1).sum(0).float()
    loss = sequence_load_balancing_loss(scores, counts, s, s, b, k, e, 1.0)
    by_seq = []
    for seq in range(b):
        rows = torch.arange(s) * b + seq
        by_seq.append(
            switch_load_balancing_loss(scores[rows], routing_map[rows].sum(0).float(), s, k, e, 1.0)
        )
    assert loss.item() == pytest.approx(sum(x.item() for x in by_seq) / b)


def test_z_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    # logsumexp: log 2, log 4 -> mean of squares
    expected = 0.5 * (math.log(2.0) ** 2 + math.log(4.0) ** 2) * 0.01
    assert z_loss(logits, 0.01).item() == pytest.approx(expected)


def test_aux_scores_use_the_plain_topk():
    routing_map, scores = routing.scores_for_aux_loss(LOGITS, 1, "sigmoid")
    s = torch.sigmoid(LOGITS)
    torch.testing.assert_close(scores, s / s.sum(-1, keepdim=True))
    assert routing_map.tolist() == [[False, True, False, False], [False, False, True, False]]


def test_sinkhorn_routing_balances_a_skewed_batch():
    logits = torch.tensor([[5.0, 0.0], [4.0, 0.0], [3.0, 0.0], [2.0, 0.0]])
    _, train_map = routing.sinkhorn_routing(logits, 1, training=True)
    _, eval_map = routing.sinkhorn_routing(logits, 1, training=False)
    assert eval_map.sum(0).tolist() == [4, 0]
    assert train_map.sum(0).tolist() == [2, 2]
