"""Context parallelism: load-balanced chunking and exact causal attention over the CP group.

Every rank builds the same full q/k/v (one seed), computes the one-rank reference, takes its
load-balanced part, runs the CP attention and its backward, gathers the output and the q/k/v
gradients back into sequence order and reports the largest difference to the reference.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.context_parallel import (
    ContextParallelGroups,
    causal_attention,
    check_context_parallel_attention,
    context_parallel_attention,
    gather_from_context_parallel,
    hierarchical_cp_rank_lists,
    load_balanced_chunk_ids,
    merge_context_parallel_shards,
    normalize_cp_comm_type,
    split_batch_for_context_parallel,
    split_for_context_parallel,
)

SEQ_DIM = 2  # [batch, heads, seq, head_dim]


def _full_inputs(dtype: torch.dtype, heads: int, kv_heads: int, seq: int):
    gen = torch.Generator().manual_seed(1234)
    shapes = [(2, heads, seq, 8), (2, kv_heads, seq, 8), (2, kv_heads, seq, 8), (2, heads, seq, 8)]
    return [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for shape in shapes]


def _reference(q, k, v, dout):
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = causal_attention(q, k, v)
    out.backward(dout)
    return [out.detach(), q.grad, k.grad, v.grad]


def _groups(comm_type: str, sizes: list[int] | None) -> ContextParallelGroups:
    if comm_type != "a2a+p2p":
        return ContextParallelGroups(cp=dist.group.WORLD)
    inner, outer = hierarchical_cp_rank_lists(list(range(dist.get_world_size())), sizes)
    rank = dist.get_rank()
    a2a = [g for ranks in inner if (g := dist.new_group(ranks)) and rank in ranks]
    p2p = [g for ranks in outer if (g := dist.new_group(ranks)) and rank in ranks]
    return ContextParallelGroups(cp=dist.group.WORLD, a2a=a2a[0], p2p=p2p[0])


def _cp_errors(comm_type: str, heads: int, kv_heads: int, sizes: list[int] | None):
    """Max abs error of out, dq, dk, dv against the reference, for float64 and float32."""
    groups = _groups(comm_type, sizes)
    rank, size = dist.get_rank(), dist.get_world_size()
    errors = {}
    for dtype in (torch.float64, torch.float32):
        full = _full_inputs(dtype, heads, kv_heads, seq=4 * size)
        expected = _reference(*full)
        q, k, v, dout = (split_for_context_parallel(t, SEQ_DIM, rank, size) for t in full)
        q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
        out = context_parallel_attention(q, k, v, groups, comm_type)
        out.backward(dout)
        got = [
            gather_from_context_parallel(t, SEQ_DIM, dist.group.WORLD)
            for t in (out, q.grad, k.grad, v.grad)
        ]
        errors[str(dtype)] = [(g - e).abs().max().item() for g, e in zip(got, expected)]
    return errors


CASES = [
    ("p2p", 2, 4, 2, None),
    ("p2p", 4, 4, 2, None),
    ("all_gather", 2, 4, 2, None),
    ("allgather", 4, 4, 2, None),
    ("a2a", 2, 4, 2, None),
    ("a2a", 4, 8, 4, None),
    ("a2a+p2p", 4, 4, 2, [2, 2]),
]


@pytest.mark.parametrize(("comm_type", "world", "heads", "kv_heads", "sizes"), CASES)
def test_cp_attention_output_and_grads_equal_one_rank_causal_attention(
    run_on_ranks, comm_type, world, heads, kv_heads, sizes
):
    results = run_on_ranks(_cp_errors, world, comm_type, heads, kv_heads, sizes)
    for rank_errors in results:
        assert max(rank_errors["torch.float64"]) < 1e-10, rank_errors
        assert max(rank_errors["torch.float32"]) < 1e-5, rank_errors


def _p2p_uses_only_send_recv() -> bool:
    """Run the ring with every gathering collective disabled: p2p must never hold the full K/V."""
    rank, size = dist.get_rank(), dist.get_world_size()
    full = _full_inputs(torch.float64, 4, 2, seq=4 * size)
    q, k, v, dout = (split_for_context_parallel(t, SEQ_DIM, rank, size) for t in full)
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    saved = {
        name: getattr(dist, name)
        for name in ("all_gather", "all_gather_into_tensor", "all_to_all_single", "all_reduce")
    }

    def refuse(*args, **kwargs):
        raise AssertionError("p2p context parallelism used a gathering collective")

    try:
        for name in saved:
            setattr(dist, name, refuse)
        out = context_parallel_attention(q, k, v, ContextParallelGroups(cp=dist.group.WORLD), "p2p")
        out.backward(dout)
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)
    return out.shape == q.shape and k.grad.shape == k.shape


def test_p2p_exchanges_blocks_without_gathering_the_sequence(run_on_ranks):
    assert run_on_ranks(_p2p_uses_only_send_recv, 4) == [True] * 4


def test_chunking_matches_the_hand_written_table_for_cp2_s8():
    tokens = torch.arange(8).unsqueeze(0)  # [b=1, s=8]: chunks of 2, rank r keeps r and 3-r
    assert split_for_context_parallel(tokens, 1, 0, 2).tolist() == [[0, 1, 6, 7]]
    assert split_for_context_parallel(tokens, 1, 1, 2).tolist() == [[2, 3, 4, 5]]
    assert load_balanced_chunk_ids(1, 2) == (1, 2)


def test_batch_split_uses_dim_two_for_the_attention_mask_and_merge_inverts_split():
    seq = 16
    batch = {
        "tokens": torch.arange(seq).repeat(2, 1),
        "labels": torch.arange(seq).repeat(2, 1) + 1,
        "loss_mask": torch.ones(2, seq),
        "position_ids": torch.arange(seq).repeat(2, 1),
        "attention_mask": torch.arange(seq).view(1, 1, seq, 1).expand(2, 1, seq, seq),
    }
    parts = [split_batch_for_context_parallel(batch, r, 4) for r in range(4)]
    assert parts[1]["tokens"][0].tolist() == [2, 3, 12, 13]
    assert parts[1]["labels"][0].tolist() == [3, 4, 13, 14]
    assert parts[1]["attention_mask"].shape == (2, 1, 4, seq)
    assert parts[1]["attention_mask"][0, 0, :, 0].tolist() == [2, 3, 12, 13]
    for key in ("tokens", "labels", "position_ids"):
        merged = merge_context_parallel_shards([p[key] for p in parts], seq_dim=1)
        assert torch.equal(merged, batch[key])
    assert split_batch_for_context_parallel({"x": None}, 0, 2) == {"x": None}


def test_hierarchical_groups_are_adjacent_inside_and_strided_across():
    inner, outer = hierarchical_cp_rank_lists([0, 1, 2, 3], [2, 2])
    assert inner == [[0, 1], [2, 3]]
    assert outer == [[0, 2], [1, 3]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: split_for_context_parallel(torch.zeros(1, 10), 1, 0, 2), "--seq-length 10"),
        (lambda: check_context_parallel_attention("p2p", 2, 4, 2, 10), "--context-parallel-size"),
        (lambda: check_context_parallel_attention("a2a", 4, 6, 6, 16), "--num-attention-heads 6"),
        (lambda: check_context_parallel_attention("a2a", 4, 8, 2, 16), "--num-query-groups 2"),
        (lambda: check_context_parallel_attention("a2a+p2p", 4, 4, 4, 16, [2]), "--hierarchical"),
        (
            lambda: check_context_parallel_attention("a2a+p2p", 4, 4, 4, 16, [2, 3]),
            "--hierarchical",
        ),
        (lambda: normalize_cp_comm_type("ring"), "--cp-comm-type 'ring'"),
    ],
)
def test_bad_configurations_raise_one_line_naming_the_flag(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_allgather_is_the_original_spelling_of_all_gather():
    assert normalize_cp_comm_type("allgather") == "all_gather"


def test_one_rank_context_parallel_is_plain_causal_attention():
    q, k, v, _ = _full_inputs(torch.float64, 4, 2, 8)
    out = context_parallel_attention(q, k, v, ContextParallelGroups(cp=None), "p2p")
    scores = (q @ k.repeat_interleave(2, 1).transpose(-1, -2)) / 8**0.5
    scores = scores.masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), float("-inf"))
    expected = scores.softmax(-1) @ v.repeat_interleave(2, 1)
    assert torch.allclose(out, expected, atol=1e-12)
    with pytest.raises(ValueError, match="--attention-dropout"):
        context_parallel_attention(q, k, v, ContextParallelGroups(cp=None), dropout_p=0.1)
