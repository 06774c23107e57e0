"""Reading the original's legacy torch-format checkpoints without the original installed."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from gpt_ckpt.legacy_reader import (
    LegacyCheckpointError,
    ShardKey,
    list_shards,
    load_file,
    read_all_shards,
    read_legacy_checkpoint,
    read_tracker,
    shard_dirname,
    tensor_parallel_model_shards,
)
from gpt_ckpt.megatron_pickle import MegatronEnumValue, MegatronObject


@pytest.fixture
def checkpoints(golden_dir: Path) -> Path:
    """The original's checkpoints in the shared golden files."""
    return golden_dir / "checkpoints"


def test_megatron_is_not_importable_here() -> None:
    assert importlib.util.find_spec("megatron") is None


def test_reads_model_args_and_metadata_of_the_gpt_checkpoint(checkpoints: Path) -> None:
    ckpt = read_legacy_checkpoint(checkpoints / "gpt")
    assert ckpt.iteration == 1 and ckpt.checkpoint_version == 3.0
    assert isinstance(ckpt.args, argparse.Namespace)
    assert ckpt.args.num_layers == 2 and ckpt.args.padded_vocab_size == 1024
    assert isinstance(ckpt.args.attention_backend, MegatronEnumValue)
    assert ckpt.args.attention_backend.name == "auto" and ckpt.args.attention_backend.value == 5
    assert ckpt.args.model_type.name == "encoder_or_decoder"
    assert ckpt.args.attention_backend == "auto"
    assert ckpt.model["embedding.word_embeddings.weight"].shape == (1024, 64)
    assert ckpt.model["output_layer._extra_state"] is None
    assert set(ckpt.raw) >= {"optimizer", "opt_param_scheduler", "rng_state"}
    assert ckpt.raw["num_floating_point_operations_so_far"] > 0


def test_lists_and_reads_tensor_and_pipeline_shards(checkpoints: Path) -> None:
    tp = tensor_parallel_model_shards(checkpoints / "llama-tp2")
    assert [s["embedding.word_embeddings.weight"].shape[0] for s in tp] == [512, 512]
    pp = read_all_shards(checkpoints / "gpt-pp2")
    assert set(pp) == {ShardKey(0, 0), ShardKey(0, 1)}
    assert "embedding.word_embeddings.weight" in pp[ShardKey(0, 0)].model
    assert "decoder.final_layernorm.weight" in pp[ShardKey(0, 1)].model
    last = read_legacy_checkpoint(checkpoints / "gpt-pp2", pp_rank=1)
    assert last.path.parent.name == "mp_rank_00_001"


def test_shard_names_follow_the_original() -> None:
    assert shard_dirname(3) == "mp_rank_03"
    assert shard_dirname(1, 2) == "mp_rank_01_002"
    assert shard_dirname(1, 2, 5) == "mp_rank_01_002_005"


def _copy_case(checkpoints: Path, tmp_path: Path, case: str = "gpt") -> Path:
    target = tmp_path / case
    shutil.copytree(checkpoints / case, target)
    return target


def test_release_tracker_and_expert_suffix(checkpoints: Path, tmp_path: Path) -> None:
    root = _copy_case(checkpoints, tmp_path)
    (root / "iter_0000001").rename(root / "release")
    (root / "latest_checkpointed_iteration.txt").write_text("release\n")
    assert read_tracker(root) == (0, True)
    assert read_legacy_checkpoint(root).iteration == 1
    (root / "release" / "mp_rank_00").rename(root / "release" / "mp_rank_00_003")
    assert set(list_shards(root / "release", expert_parallel=True)) == {ShardKey(0, 0, 3)}
    assert set(list_shards(root / "release")) == {ShardKey(0, 3, 0)}


@pytest.mark.parametrize(
    ("tracker", "message"),
    [(None, "latest_checkpointed_iteration"), ("seven", "expected an iteration")],
)
def test_bad_tracker_is_a_one_line_error(tmp_path: Path, tracker: str | None, message: str) -> None:
    if tracker is not None:
        (tmp_path / "latest_checkpointed_iteration.txt").write_text(tracker)
    with pytest.raises(LegacyCheckpointError, match=message):
        read_legacy_checkpoint(tmp_path)


def test_missing_shard_names_what_exists(checkpoints: Path) -> None:
    with pytest.raises(LegacyCheckpointError, match="have tp0/pp0/ep0"):
        read_legacy_checkpoint(checkpoints / "gpt", tp_rank=1)


class _FancyState:
    """Pickled under a fake megatron module name to stand for a class we do not know."""

    def __init__(self) -> None:
        self.depth = 3


def test_unknown_original_classes_need_trust(tmp_path: Path, monkeypatch) -> None:
    module = types.ModuleType("megatron.core.fancy")
    _FancyState.__module__ = "megatron.core.fancy"
    module._FancyState = _FancyState
    for name in ("megatron", "megatron.core", "megatron.core.fancy"):
        monkeypatch.setitem(sys.modules, name, module)
    path = tmp_path / "model_optim_rng.pt"
    torch.save({"model": {"w": torch.ones(2)}, "args": _FancyState(), "iteration": 4}, path)
    for name in ("megatron", "megatron.core", "megatron.core.fancy"):
        monkeypatch.delitem(sys.modules, name)

    with pytest.raises(LegacyCheckpointError, match="trust=True"):
        load_file(path)
    state = load_file(path, trust=True)
    assert isinstance(state["args"], MegatronObject) and state["args"].depth == 3
    assert torch.equal(state["model"]["w"], torch.ones(2))
