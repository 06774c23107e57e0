"""Our GPTModel reproduces the original's numbers on its own checkpoints.

The checkpoints in the golden folder were written by the original (``--transformer-impl local``)
before any update, so ``lm_loss[0]`` of each case is the mean cross-entropy of exactly these
weights on ``first_batch.json``. Dropout is 0 in these runs, so eval mode is the same model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from gpt_ckpt.legacy_reader import read_legacy_checkpoint, tensor_parallel_model_shards
from gpt_models.flops import transformer_flops
from gpt_models.model import GPTModel
from gpt_models.original_args import transformer_config_from_original_args
from gpt_models.original_names import load_original_state_dict
from gpt_models.tp_shards import merge_tensor_parallel_shards, tensor_parallel_layout
from gpt_models.transformer_config import TransformerConfig

REL_TOL = 2e-6

# Model flags of the golden runs and the config fields they must set.
FLAG_FIELDS = {
    "--swiglu": ("swiglu", True),
    "--disable-bias-linear": ("add_bias_linear", False),
    "--untie-embeddings-and-output-weights": ("untie_embeddings_and_output_weights", True),
    "--no-bias-gelu-fusion": ("bias_gelu_fusion", False),
    "--no-masked-softmax-fusion": ("masked_softmax_fusion", False),
    "--no-rope-fusion": ("apply_rope_fusion", False),
}


def _case(golden_dir: Path, case: str) -> tuple[dict, TransformerConfig, dict]:
    reference = json.loads((golden_dir / f"{case}.json").read_text())
    checkpoint = read_legacy_checkpoint(golden_dir / "checkpoints" / case)
    config = transformer_config_from_original_args(checkpoint.args)
    flags = reference["args"]
    for flag, (field, value) in FLAG_FIELDS.items():
        if flag in flags:
            assert getattr(config, field) == value, flag
    value_flags = {
        "--num-layers": config.num_layers,
        "--hidden-size": config.hidden_size,
        "--num-attention-heads": config.num_attention_heads,
        "--hidden-dropout": config.hidden_dropout,
        "--attention-dropout": config.attention_dropout,
    }
    for flag, value in value_flags.items():
        assert float(flags[flags.index(flag) + 1]) == value, flag
    if "--num-query-groups" in flags:
        assert config.num_query_groups == int(flags[flags.index("--num-query-groups") + 1])
    return reference, config, checkpoint.model


def _mean_loss(model: GPTModel, first_batch: dict) -> float:
    model.eval()
    with torch.no_grad():
        tokens = torch.tensor(first_batch["tokens"])
        labels = torch.tensor(first_batch["labels"])
        return model(tokens, labels=labels).mean().item()


@pytest.mark.parametrize("backend", ["unfused", "auto"])
@pytest.mark.parametrize("case", ["gpt", "llama"])
def test_original_checkpoint_reproduces_first_lm_loss(
    golden_dir: Path, first_batch: dict, case: str, backend: str
) -> None:
    reference, config, state_dict = _case(golden_dir, case)
    model = GPTModel(config.replace(attention_backend=backend), device="meta")
    model.to_empty(device="cpu")
    load_original_state_dict(model, state_dict)
    loss = _mean_loss(model, first_batch)
    expected = reference["lm_loss"][0]
    assert abs(loss - expected) / expected < REL_TOL, (loss, expected)


def test_tensor_parallel_checkpoint_merges_the_way_the_original_reads_it(
    golden_dir: Path, first_batch: dict
) -> None:
    reference, config, _ = _case(golden_dir, "llama-tp2")
    shards = tensor_parallel_model_shards(golden_dir / "checkpoints" / "llama-tp2")
    assert len(shards) == 2
    model = GPTModel(config)
    merged = merge_tensor_parallel_shards(shards, tensor_parallel_layout(model))
    load_original_state_dict(model, merged)
    loss = _mean_loss(model, first_batch)
    expected = reference["lm_loss"][0]
    assert abs(loss - expected) / expected < REL_TOL, (loss, expected)


@pytest.mark.parametrize("case", ["gpt", "llama"])
def test_initialisation_reproduces_the_original_weights_bit_for_bit(
    golden_dir: Path, case: str
) -> None:
    _, config, state_dict = _case(golden_dir, case)
    model = GPTModel(config, init_generator=torch.Generator().manual_seed(1234))
    ours = model.state_dict()
    assert list(ours) == list(state_dict)
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(ours[key], value), key


def test_tp2_checkpoint_is_the_same_draw_with_fc1_rows_reinterpreted(golden_dir: Path) -> None:
    _, config, single = _case(golden_dir, "llama")
    shards = tensor_parallel_model_shards(golden_dir / "checkpoints" / "llama-tp2")
    fc1 = "decoder.layers.0.mlp.linear_fc1.weight"
    # CPU init draws the full [gate; up] matrix and hands each rank a block of rows.
    assert torch.equal(torch.cat([s[fc1] for s in shards]), single[fc1])
    layout = tensor_parallel_layout(GPTModel(config, device="meta"))
    merged = merge_tensor_parallel_shards(shards, layout)
    assert not torch.equal(merged[fc1], single[fc1])


@pytest.mark.parametrize("case", ["gpt", "llama"])
def test_flops_match_the_checkpoint_counter(golden_dir: Path, case: str) -> None:
    _, config, _ = _case(golden_dir, case)
    checkpoint = read_legacy_checkpoint(golden_dir / "checkpoints" / case)
    args = checkpoint.args
    flops = transformer_flops(config, batch_size=args.global_batch_size, seq_length=args.seq_length)
    assert flops == checkpoint.raw["num_floating_point_operations_so_far"]  # after 1 iteration


def test_pipeline_stage_initialisation_matches_the_pp2_checkpoint(golden_dir: Path) -> None:
    from gpt_ckpt.legacy_reader import read_legacy_checkpoint as read

    for stage in (0, 1):
        checkpoint = read(golden_dir / "checkpoints" / "gpt-pp2", pp_rank=stage)
        config = transformer_config_from_original_args(checkpoint.args)
        model = GPTModel(
            config,
            pre_process=stage == 0,
            post_process=stage == 1,
            layer_numbers=[stage + 1],
            # The original seeds pipeline stage p with seed + 100 * p.
            init_generator=torch.Generator().manual_seed(1234 + 100 * stage),
        )
        ours = model.state_dict()
        assert list(ours) == list(checkpoint.model)
        for key, value in checkpoint.model.items():
            # The last stage's tied output layer is a copy of stage 0's embeddings, synced
            # by the training setup, not drawn.
            if isinstance(value, torch.Tensor) and key != "output_layer.weight":
                assert torch.equal(ours[key], value), (stage, key)
