"""Command-line flags of this package: its config classes, in the original's group order.

The pretrain app composes one parser from every package's `FLAG_CONFIGS`; `add_arguments` lets any
other program reuse this package's flags on a parser of its own.
"""

from __future__ import annotations

import argparse

from gpt_tokenizers.flagspec import add_flags

from .config import (
    AutoresumeConfig,
    BiencoderConfig,
    ConfigLoggerConfig,
    EvaluationConfig,
    ExperimentalConfig,
    FtPackageConfig,
    InProcessRestartConfig,
    KitchenConfig,
    LegacyModelConfig,
    LoggingConfig,
    MSCConfig,
    OneLoggerConfig,
    OtherModelDataConfig,
    RerunEngineConfig,
    RetroConfig,
    StragglerConfig,
    TrainingLoopConfig,
    VisionConfig,
    WorkloadInspectorConfig,
)

FLAG_CONFIGS: tuple[type, ...] = (
    LegacyModelConfig,
    TrainingLoopConfig,
    EvaluationConfig,
    OtherModelDataConfig,
    AutoresumeConfig,
    BiencoderConfig,
    VisionConfig,
    LoggingConfig,
    StragglerConfig,
    WorkloadInspectorConfig,
    RetroConfig,
    ExperimentalConfig,
    OneLoggerConfig,
    InProcessRestartConfig,
    FtPackageConfig,
    ConfigLoggerConfig,
    RerunEngineConfig,
    MSCConfig,
    KitchenConfig,
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add this package's flag groups to `parser`."""
    for cls in FLAG_CONFIGS:
        add_flags(parser.add_argument_group(title=cls.GROUP), cls)
    return parser
