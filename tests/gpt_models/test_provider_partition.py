"""A tensor-parallel partition built on one process: every parameter carries its split, the
ranks' shards (each drawn from the full master weight) merge into the one-rank model exactly,
and the merge reads only the parameters' tags."""

from __future__ import annotations

import pytest
import torch
from gpt_models import GPTModel, TransformerConfig
from gpt_models.partition import TensorParallelPartition
from gpt_models.provider import LocalProvider
from gpt_models.tp_shards import (
    merge_tensor_parallel_shards,
    split_tensor_parallel,
    tensor_parallel_layout,
)

TINY = dict(
    num_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    padded_vocab_size=64,
    max_position_embeddings=16,
    use_cpu_initialization=True,
)
GPT2_LIKE = dict(position_embedding_type="learned_absolute", add_bias_linear=True)
LLAMA_LIKE = dict(
    position_embedding_type="rope",
    normalization="RMSNorm",
    swiglu=True,
    add_bias_linear=False,
    untie_embeddings_and_output_weights=True,
    num_query_groups=2,
    ffn_hidden_size=48,
)
CASES = {"gpt2": GPT2_LIKE, "llama": LLAMA_LIKE}
TAGS = ("tensor_model_parallel", "partition_dim", "partition_stride")


def config_of(**fields: object) -> TransformerConfig:
    return TransformerConfig.from_flat(**fields)


def build(config: TransformerConfig, size: int = 1, rank: int = 0) -> GPTModel:
    """Rank ``rank`` of a ``size``-way partition, drawn from the one master seed."""
    provider = LocalProvider(config, TensorParallelPartition(size=size, rank=rank))
    return GPTModel(config, provider=provider, init_generator=torch.Generator().manual_seed(1234))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_parameter_carries_its_split(case: str) -> None:
    model = build(config_of(**TINY, **CASES[case]), size=2, rank=1)
    for name, param in model.named_parameters():
        assert all(hasattr(param, tag) for tag in TAGS), name
    splits = {
        name: (p.tensor_model_parallel, p.partition_dim) for name, p in model.named_parameters()
    }
    assert splits["embedding.word_embeddings.weight"] == (True, 0)
    assert splits["decoder.layers.0.self_attention.linear_qkv.weight"] == (True, 0)
    assert splits["decoder.layers.0.self_attention.linear_proj.weight"] == (True, 1)
    assert splits["decoder.layers.0.mlp.linear_fc2.weight"] == (True, 1)
    assert splits["decoder.final_layernorm.weight"] == (False, -1)
    fc1 = model.decoder.layers[0].mlp.linear_fc1.weight
    assert fc1.partition_stride == (2 if case == "llama" else 1)  # [gate_r; up_r] per rank


@pytest.mark.parametrize("case", sorted(CASES))
def test_layers_size_themselves_from_the_partition(case: str) -> None:
    config = config_of(**TINY, **CASES[case])
    full, half = build(config), build(config, size=2, rank=0)
    attention = half.decoder.layers[0].self_attention
    assert (attention.num_heads, attention.num_groups) == (2, config.num_groups // 2)
    for name, param in half.named_parameters():
        whole = full.get_parameter(name)
        if param.tensor_model_parallel:
            expected = list(whole.shape)
            expected[param.partition_dim] //= 2
            assert list(param.shape) == expected, name
        else:
            assert param.shape == whole.shape, name


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_ranks_merge_into_the_one_rank_weights_exactly(case: str) -> None:
    config = config_of(**TINY, **CASES[case])
    single = build(config).state_dict()
    ranks = [build(config, size=2, rank=r) for r in (0, 1)]
    layout = tensor_parallel_layout(ranks[0])
    merged = merge_tensor_parallel_shards([m.state_dict() for m in ranks], layout)
    assert list(merged) == list(single)
    for key, value in single.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(merged[key], value), key
    # Splitting the one-rank weights by the same tags gives each rank's own initialisation.
    for rank, shard in zip(ranks, split_tensor_parallel(single, layout, 2)):
        for key, value in rank.state_dict().items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(shard[key], value), key


def test_the_merge_reads_tags_not_names() -> None:
    config = config_of(**TINY, **LLAMA_LIKE)
    ranks = [build(config, size=2, rank=r) for r in (0, 1)]
    # Under names no table could know, the tags alone still say how to join each tensor.
    renamed = {f"wrapped.{key}": split for key, split in tensor_parallel_layout(ranks[0]).items()}
    shards = [{f"wrapped.{k}": v for k, v in m.state_dict().items()} for m in ranks]
    merged = merge_tensor_parallel_shards(shards, renamed)
    for key, value in build(config).state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(merged[f"wrapped.{key}"], value), key


def test_a_rank_built_on_the_meta_device_keeps_its_tags_and_initialises_the_same() -> None:
    config = config_of(**TINY, **LLAMA_LIKE)
    direct = build(config, size=2, rank=1)
    provider = LocalProvider(config, TensorParallelPartition(size=2, rank=1))
    meta = GPTModel(config, provider=provider, device="meta")
    meta.to_empty(device="cpu")  # new parameter objects: the tags must come along
    meta.initialize_parameters(torch.Generator().manual_seed(1234))
    assert tensor_parallel_layout(meta) == tensor_parallel_layout(direct)
    for key, value in direct.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(meta.state_dict()[key], value), key


def test_an_untagged_parameter_is_an_error_not_a_guess() -> None:
    model = build(config_of(**TINY, **GPT2_LIKE))
    model.extra = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="carries no tensor-parallel tags"):
        tensor_parallel_layout(model)


@pytest.mark.parametrize(
    ("fields", "size", "message"),
    [
        ({}, 3, "--num-attention-heads 4 is not divisible by --tensor-model-parallel-size 3"),
        (
            {"num_query_groups": 2},
            4,
            "--num-query-groups 2 is not divisible by --tensor-model-parallel-size 4",
        ),
        ({"ffn_hidden_size": 50}, 4, "--ffn-hidden-size 50 is not divisible"),
    ],
)
def test_a_partition_that_does_not_divide_fails_in_one_line(
    fields: dict, size: int, message: str
) -> None:
    config = config_of(**{**TINY, "num_attention_heads": 4, **fields})
    with pytest.raises(ValueError) as error:
        build(config, size=size, rank=0)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_rank_outside_the_partition_is_rejected() -> None:
    with pytest.raises(ValueError, match="rank 2 is outside --tensor-model-parallel-size 2"):
        TensorParallelPartition(size=2, rank=2)
