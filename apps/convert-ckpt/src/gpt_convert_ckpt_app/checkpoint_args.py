"""The ``args`` Namespace a core saver pickles into each shard, as the original's saver does.

It starts from the source checkpoint's args (when there are any) and sets every architecture
flag of the model (each gpt-models flag class's fields, under the original's dest names), the
target parallel sizes, the padded vocabulary and the spec whose names the files hold, so that a reader of the original's
``--use-checkpoint-args`` kind (``gpt_models.original_args``) rebuilds the same model. Values
that are stand-ins for the original's classes are written as plain names: pickling them would
need the original installed to load again.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from gpt_ckpt.megatron_pickle import MegatronEnumValue, is_stand_in
from gpt_models.transformer_config import PARTS

from .parts import ModelMetadata


def checkpoint_args(
    metadata: ModelMetadata,
    *,
    tensor_parallel: int,
    pipeline_parallel: int,
    expert_parallel: int,
    padded_vocab_size: int,
    tokenizer_model: str | None,
    transformer_impl: str,
) -> argparse.Namespace:
    """The saved model's args (architecture, parallel sizes, vocabulary, counters)."""
    config = metadata.config
    values = dict(vars(metadata.checkpoint_args)) if metadata.checkpoint_args else {}
    for part in PARTS:
        instance = getattr(config, part)
        for field in dataclasses.fields(instance):
            values[field.name] = getattr(instance, field.name)
    for name, value in list(values.items()):
        if isinstance(value, MegatronEnumValue):
            values[name] = value.name if value.name is not None else value.value
        elif is_stand_in(value):
            del values[name]
    values.setdefault("seq_length", config.max_position_embeddings)
    values.update(
        padded_vocab_size=padded_vocab_size,
        make_vocab_size_divisible_by=metadata.make_vocab_size_divisible_by,
        tensor_model_parallel_size=tensor_parallel,
        pipeline_model_parallel_size=pipeline_parallel,
        expert_model_parallel_size=expert_parallel,
        virtual_pipeline_model_parallel_size=None,
        transformer_impl=transformer_impl,
        params_dtype=config.params_dtype,
        fp16=config.params_dtype == torch.float16,
        bf16=config.params_dtype == torch.bfloat16,
        iteration=metadata.iteration or 0,
        consumed_train_samples=0,
        skipped_train_samples=0,
        consumed_valid_samples=0,
    )
    if metadata.true_vocab_size is not None:
        values["true_vocab_size"] = metadata.true_vocab_size
    if tokenizer_model is not None:
        values["tokenizer_model"] = tokenizer_model
    return argparse.Namespace(**values)
