"""The original's validate_args, one small check per concern, on a copy of the parsed flags.

Each check either fills in a derived value (data-parallel size, global batch size, ffn size, ...)
or fails with one line naming the flags at fault. Order matters where one derived value feeds the
next, as in the original. The result is the frozen RunConfig; the namespace copy the checks
worked on goes no further.
"""

from __future__ import annotations

import argparse
import copy

from ..run_config import RunConfig, build_run_config
from .batch import resolve_batch_sizes
from .checkpoint import check_checkpointing
from .context import Resolution
from .data import resolve_data_sources
from .deprecated import map_deprecated_flags
from .misc import check_runtime
from .model import check_recompute, resolve_model_features, resolve_model_shape
from .parallel import check_pipeline_layout, resolve_parallel_sizes, resolve_virtual_pipeline
from .precision import resolve_precision
from .schedule import check_learning_rate, check_weight_decay, resolve_training_length

CHECKS = (
    map_deprecated_flags,
    check_checkpointing,
    resolve_parallel_sizes,
    resolve_batch_sizes,
    resolve_virtual_pipeline,
    resolve_precision,
    resolve_training_length,
    resolve_model_shape,
    check_pipeline_layout,
    resolve_model_features,
    check_recompute,
    check_learning_rate,
    check_weight_decay,
    resolve_data_sources,
    check_runtime,
)


def resolve_args(args: argparse.Namespace, world_size: int = 1) -> Resolution:
    """Run every check on a copy of `args` (left unchanged); the copy holds the derived values."""
    resolution = Resolution(args=copy.deepcopy(args), world_size=world_size)
    for check in CHECKS:
        check(resolution)
    return resolution


def validate_args(args: argparse.Namespace, world_size: int = 1) -> RunConfig:
    """Check the parsed flags, derive the original's values, and freeze them into a RunConfig."""
    resolution = resolve_args(args, world_size)
    return build_run_config(
        resolution.args,
        warnings=tuple(resolution.warnings),
        messages=tuple(resolution.messages),
    )


__all__ = ["RunConfig", "validate_args"]
