"""The run's configuration: every package's flag classes, filled once by validation, frozen.

Validation checks and derives on a copy of the parsed namespace; ``build_run_config`` then turns
that copy into one instance of every flag class (derived values such as ``data_parallel_size``
are non-flag fields of the class that owns them) and the namespace goes no further. Setup
completes the tree once the tokenizer is built (``with_padded_vocab``: the padded vocabulary and
the model's TransformerConfig). Packages and setup steps take their typed parts;
``to_original_args`` gives the original's flat layout back, for the ``arguments`` printout and a
checkpoint's ``args``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import torch
from gpt_ckpt.config import CheckpointingConfig
from gpt_data.config import DataConfig, DataloaderTypeConfig, SFTDataConfig, ValidationDataConfig
from gpt_flags.flagspec import flag_fields
from gpt_models.transformer_config import PARTS, TransformerConfig
from gpt_parallel.config import (
    DistributedConfig,
    ExpertParallelConfig,
    LearningRateConfig,
    OptimizerConfig,
    PrecisionConfig,
    SeedConfig,
    TrainingParallelConfig,
)
from gpt_tokenizers import TokenizerFlags, VocabPaddingConfig

from .config import EvaluationConfig, LoggingConfig, TrainingLoopConfig, VisionConfig
from .groups import flag_configs

T = TypeVar("T")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class OriginalOnlyValues:
    """Values the original keeps in its args that no flag class here owns (no flag sets them):
    the loop's sample counters at start, and two switches validation derives for the original's
    checkpoint code. Kept so that ``to_original_args`` gives the original's layout exactly."""

    consumed_train_samples: int = 0
    consumed_valid_samples: int = 0
    skipped_train_samples: int = 0
    variable_seq_lengths: bool = False
    use_dist_ckpt: bool = False
    flag_status: bool = False


def expect_typed(value: Any, cls: type, who: str) -> None:
    """Setup steps take typed configs: a namespace (or anything else) is a TypeError."""
    if not isinstance(value, cls):
        raise TypeError(f"{who} takes a {cls.__name__}, not {type(value).__name__}")


def _instance(cls: type, values: Mapping[str, Any]) -> Any:
    """One flag class from resolved values: its flags, and the derived fields validation set."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    flags = {f.name for f in flag_fields(cls)}
    kwargs = {n: values[n] for n in names if n in flags or n in values}
    return cls(**kwargs)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One instance of every flag class (keyed by class), the original-only values, and, once
    the tokenizer is known, the model's TransformerConfig."""

    parts: Mapping[type, Any]
    original_only: OriginalOnlyValues = field(default_factory=OriginalOnlyValues)
    model: TransformerConfig | None = None
    warnings: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()

    def part(self, cls: type[T]) -> T:
        """The instance of flag class ``cls``."""
        if cls not in self.parts:
            raise KeyError(f"{cls.__name__} is not a flag class of this run")
        return self.parts[cls]

    # --- the parts setup hands out -------------------------------------------------------
    @property
    def parallel(self) -> TrainingParallelConfig:
        return self.part(TrainingParallelConfig)

    @property
    def distributed(self) -> DistributedConfig:
        return self.part(DistributedConfig)

    @property
    def expert(self) -> ExpertParallelConfig:
        return self.part(ExpertParallelConfig)

    @property
    def seed(self) -> SeedConfig:
        return self.part(SeedConfig)

    @property
    def optimizer(self) -> OptimizerConfig:
        return self.part(OptimizerConfig)

    @property
    def learning_rate(self) -> LearningRateConfig:
        return self.part(LearningRateConfig)

    @property
    def precision(self) -> PrecisionConfig:
        return self.part(PrecisionConfig)

    @property
    def tokenizer(self) -> TokenizerFlags:
        return self.part(TokenizerFlags)

    @property
    def vocab(self) -> VocabPaddingConfig:
        return self.part(VocabPaddingConfig)

    @property
    def data(self) -> DataConfig:
        return self.part(DataConfig)

    @property
    def dataloader(self) -> DataloaderTypeConfig:
        return self.part(DataloaderTypeConfig)

    @property
    def validation_data(self) -> ValidationDataConfig:
        return self.part(ValidationDataConfig)

    @property
    def sft(self) -> SFTDataConfig:
        return self.part(SFTDataConfig)

    @property
    def checkpoint(self) -> CheckpointingConfig:
        return self.part(CheckpointingConfig)

    @property
    def loop(self) -> TrainingLoopConfig:
        return self.part(TrainingLoopConfig)

    @property
    def evaluation(self) -> EvaluationConfig:
        return self.part(EvaluationConfig)

    @property
    def logging(self) -> LoggingConfig:
        return self.part(LoggingConfig)

    @property
    def vision(self) -> VisionConfig:
        return self.part(VisionConfig)

    # --- derived views ----------------------------------------------------------------------
    @property
    def padded_vocab_size(self) -> int:
        padded = self.tokenizer.padded_vocab_size
        if padded is None:
            raise RuntimeError("the padded vocabulary is set once the tokenizer is built")
        return padded

    def with_values(self, **changes: Any) -> RunConfig:
        """A copy with some values (flag dests or derived fields) changed in the parts owning
        them; an unknown name is a TypeError. For setup steps and tests."""
        owners = _owners(self.parts)
        grouped: dict[type, dict[str, Any]] = {}
        extras: dict[str, Any] = {}
        extra_names = {f.name for f in dataclasses.fields(OriginalOnlyValues)}
        for name, value in changes.items():
            if name in owners:
                grouped.setdefault(owners[name], {})[name] = value
            elif name in extra_names:
                extras[name] = value
            else:
                raise TypeError(f"no flag class of this run has a value {name!r}")
        parts = dict(self.parts)
        for cls, values in grouped.items():
            parts[cls] = dataclasses.replace(parts[cls], **values)
        return dataclasses.replace(
            self,
            parts=MappingProxyType(parts),
            original_only=dataclasses.replace(self.original_only, **extras),
        )

    def with_padded_vocab(self, padded_vocab_size: int) -> RunConfig:
        """The tree with the padded vocabulary the tokenizer fixed (``--padded-vocab-size``)."""
        return self.with_values(padded_vocab_size=padded_vocab_size)

    def with_model(self, model: TransformerConfig) -> RunConfig:
        """The tree completed with the model's TransformerConfig (``transformer_config()``)."""
        return dataclasses.replace(self, model=model)

    def transformer_config(self) -> TransformerConfig:
        """gpt-models' parts of this run, plus the values the model takes from other owners."""
        parts = {name: self.part(cls) for name, cls in PARTS.items()}
        arch = parts["architecture"]
        if arch.position_embedding_type == "rope" and parts["layer"].rope_type == "yarn":
            arch = dataclasses.replace(arch, position_embedding_type="yarn")
        if parts["layer"].use_flash_attn:  # the legacy switch for the flash backend
            arch = dataclasses.replace(arch, attention_backend="flash")
        parts["architecture"] = arch
        return TransformerConfig(
            **parts,
            padded_vocab_size=self.padded_vocab_size,
            params_dtype=DTYPES[self.precision.params_dtype or "float32"],
            perform_initialization=self.checkpoint.perform_initialization,
        )

    def to_original_args(self) -> argparse.Namespace:
        """Every dest and derived value under the original's names (flat, as its args)."""
        values: dict[str, Any] = {}
        for instance in self.parts.values():
            for f in dataclasses.fields(instance):
                if f.init:
                    values[f.name] = getattr(instance, f.name)
        values.update(dataclasses.asdict(self.original_only))
        return argparse.Namespace(**values)


def _owners(parts: Mapping[type, Any]) -> dict[str, type]:
    return {f.name: cls for cls in parts for f in dataclasses.fields(cls) if f.init}


def build_run_config(
    resolved: argparse.Namespace,
    *,
    warnings: tuple[str, ...] = (),
    messages: tuple[str, ...] = (),
) -> RunConfig:
    """The frozen tree from validation's resolved namespace; every value lands in one class."""
    values = vars(resolved)
    parts = {cls: _instance(cls, values) for cls in flag_configs()}
    extra_names = [f.name for f in dataclasses.fields(OriginalOnlyValues)]
    original_only = OriginalOnlyValues(**{n: values[n] for n in extra_names if n in values})
    covered = set(_owners(parts)) | set(extra_names)
    lost = sorted(set(values) - covered)
    if lost:
        raise RuntimeError(f"validation set values no config class holds: {', '.join(lost)}")
    return RunConfig(
        parts=MappingProxyType(parts),
        original_only=original_only,
        warnings=tuple(warnings),
        messages=tuple(messages),
    )
