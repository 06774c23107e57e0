"""The setup steps take typed configs: the namespace stops at the CLI layer.

The trainer, data setup, optimizer setup and model builder are checked by their annotations
(no argparse.Namespace anywhere) and by a call: a namespace is refused with a TypeError, while a
real run through `pretrain` (which hands them the frozen RunConfig) trains.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest
import torch
from gpt_models import TransformerConfig
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.data_setup import build_datasets_and_iterators
from gpt_pretrain_app.model_setup import (
    build_model,
    build_tokenizer_and_vocab,
    build_transformer_config,
)
from gpt_pretrain_app.optimizer_setup import (
    build_microbatch_calculator,
    build_optimizer_and_scheduler,
)
from gpt_pretrain_app.run_config import RunConfig
from gpt_pretrain_app.training import Trainer
from gpt_pretrain_app.validate import validate_args

SETUP_STEPS = (
    Trainer,
    build_datasets_and_iterators,
    build_optimizer_and_scheduler,
    build_microbatch_calculator,
    build_model,
    build_transformer_config,
    build_tokenizer_and_vocab,
)


def _annotations(step) -> list[str]:
    signature = inspect.signature(step)
    texts = [str(p.annotation) for p in signature.parameters.values()]
    return [*texts, str(signature.return_annotation)]


@pytest.mark.parametrize("step", SETUP_STEPS, ids=lambda s: s.__name__)
def test_setup_steps_are_annotated_with_typed_configs_never_a_namespace(step) -> None:
    texts = _annotations(step)
    assert not any("Namespace" in text for text in texts), texts
    assert any("RunConfig" in t or "TransformerConfig" in t for t in texts), texts


def _namespace(tiny_args: list[str]) -> argparse.Namespace:
    return parse_args(tiny_args)


def test_each_setup_step_refuses_a_namespace_with_a_type_error(tiny_args: list[str]) -> None:
    args = _namespace(tiny_args)
    with pytest.raises(TypeError, match="RunConfig"):
        build_datasets_and_iterators(
            args, None, dp_rank=0, dp_size=1, is_build_rank=True, barrier=None
        )
    with pytest.raises(TypeError, match="RunConfig"):
        build_optimizer_and_scheduler(torch.nn.Linear(2, 2), args, grad_stats_group=None, tp_rank=0)
    with pytest.raises(TypeError, match="RunConfig"):
        build_microbatch_calculator(args)
    with pytest.raises(TypeError, match="RunConfig"):
        build_transformer_config(args, print)
    with pytest.raises(TypeError, match="RunConfig"):
        build_tokenizer_and_vocab(args, None)
    with pytest.raises(TypeError, match="TransformerConfig"):
        build_model(args, torch.device("cpu"))
    trainer_fields = {f.name: None for f in dataclasses.fields(Trainer) if f.init}
    trainer_fields.update(config=args, device=torch.device("cpu"), train_iters=1)
    with pytest.raises(TypeError, match="RunConfig"):
        Trainer(**{k: v for k, v in trainer_fields.items() if k not in ("state", "history")})


def test_validation_returns_one_frozen_tree_that_round_trips_to_the_original_layout(
    tiny_args: list[str],
) -> None:
    parsed = _namespace(tiny_args)
    config = validate_args(parsed)
    assert isinstance(config, RunConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.parallel.micro_batch_size = 3  # type: ignore[misc]
    assert config.distributed.data_parallel_size == 1  # derived values are fields
    original = vars(config.to_original_args())
    assert set(vars(parsed)) <= set(original)
    assert original["ffn_hidden_size"] == 4 * 32 and original["kv_channels"] == 8
    with pytest.raises(TypeError, match="no flag class"):
        config.with_values(not_a_flag=1)
    completed = config.with_padded_vocab(256)
    model = completed.transformer_config()
    assert isinstance(model, TransformerConfig) and model.padded_vocab_size == 256


def test_a_run_through_pretrain_hands_the_trainer_its_run_config(pretrain, tiny_args) -> None:
    code, trainer = pretrain(tiny_args)
    assert code == 0
    assert isinstance(trainer.config, RunConfig)
    assert trainer.config.model is not None
    assert trainer.config.model.hidden_size == 32
    assert len(trainer.history.lm_loss) == 4
