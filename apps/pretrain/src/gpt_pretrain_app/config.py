"""Flags owned by the pretrain app, by module: the training loop, evaluation and logging
(`loop_config`), and the groups GPT pretraining does not use, accepted so existing scripts run
and warned about (`inert_model_config`, `inert_service_config`).

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. tests/pretrain/test_flags.py checks them
against the original's flag table. This module re-exports every class.
"""

from __future__ import annotations

from .inert_model_config import (
    AutoresumeConfig,
    BiencoderConfig,
    LegacyModelConfig,
    OtherModelDataConfig,
    VisionConfig,
)
from .inert_service_config import (
    ConfigLoggerConfig,
    ExperimentalConfig,
    FtPackageConfig,
    InProcessRestartConfig,
    KitchenConfig,
    MSCConfig,
    OneLoggerConfig,
    RerunEngineConfig,
    RetroConfig,
    StragglerConfig,
    WorkloadInspectorConfig,
)
from .loop_config import EvaluationConfig, LoggingConfig, TrainingLoopConfig

__all__ = [
    "AutoresumeConfig",
    "BiencoderConfig",
    "ConfigLoggerConfig",
    "EvaluationConfig",
    "ExperimentalConfig",
    "FtPackageConfig",
    "InProcessRestartConfig",
    "KitchenConfig",
    "LegacyModelConfig",
    "LoggingConfig",
    "MSCConfig",
    "OneLoggerConfig",
    "OtherModelDataConfig",
    "RerunEngineConfig",
    "RetroConfig",
    "StragglerConfig",
    "TrainingLoopConfig",
    "VisionConfig",
    "WorkloadInspectorConfig",
]
