"""A GPT model split over 2 and 4 gloo ranks (tensor parallelism, with and without sequence
parallelism; context parallelism with each comm type) computes the one-rank model's loss,
logits and gradients.

Each rank builds its shard from the one master seed, so the shards are slices of the one-rank
model; the test runs the same batch on both and compares the per-token loss, the full logits
and every gradient (merged from the ranks' shards by their tags), in float64 so any error in
the collectives shows far above rounding.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_models import GPTModel, TransformerConfig
from gpt_models.partition import ContextParallelPartition, TensorParallelPartition
from gpt_models.provider import LocalProvider
from gpt_models.tp_shards import (
    TensorSplit,
    has_tensor_parallel_partial_grad,
    merge_tensor_parallel_shards,
    tensor_parallel_layout,
)
from gpt_parallel.context_parallel import (
    ContextParallelGroups,
    hierarchical_cp_rank_lists,
    merge_context_parallel_shards,
    split_batch_for_context_parallel,
)

TINY = dict(
    num_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    padded_vocab_size=64,
    max_position_embeddings=16,
    use_cpu_initialization=True,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    params_dtype=torch.float64,
)
CASES = {
    "gpt2": dict(position_embedding_type="learned_absolute", add_bias_linear=True),
    "llama": dict(
        position_embedding_type="rope",
        normalization="RMSNorm",
        swiglu=True,
        add_bias_linear=False,
        untie_embeddings_and_output_weights=True,
        num_query_groups=2,
        ffn_hidden_size=48,
        qk_layernorm=True,
    ),
}


def _model(case: str, size: int, rank: int, group, sequence_parallel: bool) -> GPTModel:
    config = TransformerConfig.from_flat(**TINY, **CASES[case])
    partition = TensorParallelPartition(size, rank, group, sequence_parallel)
    provider = LocalProvider(config, partition)
    return GPTModel(config, provider=provider, init_generator=torch.Generator().manual_seed(7))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 64, (2, 16), generator=gen)
    labels = torch.randint(0, 64, (2, 16), generator=gen)
    return tokens, labels


def _summed_partial_grads(model: GPTModel, group) -> None:
    for param in model.parameters():
        if has_tensor_parallel_partial_grad(param) and param.grad is not None:
            dist.all_reduce(param.grad, group=group)


def _run(model: GPTModel, group=None) -> dict:
    tokens, labels = _batch()
    loss = model(tokens, labels=labels)
    loss.mean().backward()
    _summed_partial_grads(model, group)
    with torch.no_grad():
        logits = model(tokens)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return {"loss": loss.detach(), "logits": logits, "grads": grads}


def run_tensor_parallel(case: str, sequence_parallel: bool) -> dict:
    size, rank = dist.get_world_size(), dist.get_rank()
    group = dist.new_group(list(range(size)))
    model = _model(case, size, rank, group, sequence_parallel)
    out = _run(model, group)
    out["layout"] = {k: (v.dim, v.stride) for k, v in tensor_parallel_layout(model).items()}
    return out


LAYOUTS = [
    (case, size, sp)
    for case in sorted(CASES)
    for size, sp in ((2, False), (2, True), (4, True))
    if not (case == "llama" and size == 4)  # 2 query groups do not split 4 ways
]


@pytest.mark.parametrize("case,size,sequence_parallel", LAYOUTS)
def test_tensor_parallel_model_equals_one_rank(run_on_ranks, case, size, sequence_parallel):
    reference = _run(_model(case, 1, 0, None, False))
    ranks = run_on_ranks(run_tensor_parallel, size, case, sequence_parallel, timeout=120)
    for out in ranks:
        torch.testing.assert_close(
            out["loss"], reference["loss"], rtol=1e-6, atol=1e-6
        )  # fp32 loss
        torch.testing.assert_close(out["logits"], reference["logits"], rtol=1e-12, atol=1e-12)
    layout = tensor_parallel_layout(_model(case, 1, 0, None, False))
    shard_layout = ranks[0]["layout"]
    assert {k: (v.dim, v.stride) for k, v in layout.items()}.keys() == shard_layout.keys()
    splits = {k: TensorSplit(*v) for k, v in shard_layout.items()}
    merged = merge_tensor_parallel_shards([out["grads"] for out in ranks], splits)
    assert merged.keys() == reference["grads"].keys()
    for name, grad in reference["grads"].items():
        torch.testing.assert_close(merged[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def _cp_model(case: str, cp: int, rank: int, groups, comm_type: str) -> GPTModel:
    config = TransformerConfig.from_flat(**TINY, **CASES[case])
    context = ContextParallelPartition(cp, rank, groups, (comm_type,))
    provider = LocalProvider(config, context=context)
    return GPTModel(config, provider=provider, init_generator=torch.Generator().manual_seed(7))


def run_context_parallel(case: str, comm_type: str) -> dict:
    size, rank = dist.get_world_size(), dist.get_rank()
    cp = dist.new_group(list(range(size)))
    a2a = p2p = None
    if comm_type == "a2a+p2p":  # 2 x 2: adjacent ranks all-to-all, a ring across the pairs
        inner, outer = hierarchical_cp_rank_lists(list(range(size)), (2, size // 2))
        for ranks in inner:
            group = dist.new_group(ranks)
            a2a = group if rank in ranks else a2a
        for ranks in outer:
            group = dist.new_group(ranks)
            p2p = group if rank in ranks else p2p
    model = _cp_model(case, size, rank, ContextParallelGroups(cp, a2a, p2p), comm_type)
    tokens, labels = _batch()
    positions = torch.arange(16)[None].expand(2, 16)
    local = split_batch_for_context_parallel(
        {"tokens": tokens, "labels": labels, "positions": positions}, rank, size
    )
    loss = model(local["tokens"], position_ids=local["positions"], labels=local["labels"])
    # Each rank's loss is its tokens' share of the one-rank mean; summing the ranks' gradients
    # gives the full gradient (what DDP over the data x context group does, times its size).
    (loss.sum() / tokens.numel()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    for grad in grads.values():
        dist.all_reduce(grad, group=cp)
    return {"loss": loss.detach(), "grads": grads}


@pytest.mark.parametrize("comm_type,size", [("p2p", 2), ("all_gather", 2), ("a2a", 2),
                                            ("a2a+p2p", 4)])  # fmt: skip
@pytest.mark.parametrize("case", sorted(CASES))
def test_context_parallel_model_equals_one_rank(run_on_ranks, case, comm_type, size):
    model = _model(case, 1, 0, None, False)
    tokens, labels = _batch()
    loss = model(tokens, labels=labels)
    loss.mean().backward()
    ranks = run_on_ranks(run_context_parallel, size, case, comm_type, timeout=120)
    merged = merge_context_parallel_shards([out["loss"] for out in ranks], seq_dim=1)
    torch.testing.assert_close(merged, loss.detach(), rtol=1e-6, atol=1e-6)
    for name, param in model.named_parameters():
        torch.testing.assert_close(ranks[0]["grads"][name], param.grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("sequence_parallel", [False, True])
def test_dropout_in_the_tensor_parallel_region_draws_from_the_model_parallel_stream(
    sequence_parallel,
):
    """As the original: attention dropout (and embedding dropout on sequence shards) draws
    from the tracker's model-parallel stream, seeded per tensor-parallel rank, so the ranks'
    heads get their own masks; the default generator, shared by the ranks, is left alone."""
    from gpt_parallel.random import MODEL_PARALLEL_RNG, RNGStatesTracker, model_parallel_manual_seed

    def states_after_forward(stream_rank: int) -> tuple[torch.Tensor, ...]:
        """Rank 0's slice of the model, with the stream of tensor-parallel rank `stream_rank`."""
        tracker = RNGStatesTracker("cpu")
        model_parallel_manual_seed(tracker, 1234, tp_rank=stream_rank)
        config = TransformerConfig.from_flat(
            **{**TINY, "attention_dropout": 0.5, "hidden_dropout": 0.0}, **CASES["gpt2"]
        )
        partition = TensorParallelPartition(2, 0, None, sequence_parallel)
        provider = LocalProvider(config, partition, rng_fork=tracker.fork)
        model = GPTModel(config, provider=provider, init_generator=torch.Generator().manual_seed(7))
        model.train()
        before = torch.get_rng_state()
        tokens, _ = _batch()
        tokens = tokens % 32  # this rank's half of the vocabulary
        out = model(tokens)
        return before, torch.get_rng_state(), tracker.get_states()[MODEL_PARALLEL_RNG], out

    before, after, stream0, out0 = states_after_forward(0)
    assert torch.equal(before, after)  # nothing drawn from the default generator
    _, _, again, same = states_after_forward(0)
    assert torch.equal(stream0, again) and torch.equal(out0, same)
    _, _, stream1, out1 = states_after_forward(1)
    assert not torch.equal(stream0, stream1)
    assert not torch.equal(out0, out1)  # the same weights, another rank's masks
