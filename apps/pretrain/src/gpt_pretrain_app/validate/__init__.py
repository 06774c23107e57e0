"""The original's validate_args, one small check per concern, on a copy of the parsed flags.

Each check either fills in a derived value (data-parallel size, global batch size, ffn size, ...)
or fails with one line naming the flags at fault. Order matters where one derived value feeds the
next, as in the original.
"""

from __future__ import annotations

import argparse
import copy

from .batch import resolve_batch_sizes
from .checkpoint import check_checkpointing
from .context import Resolution
from .data import resolve_data_sources
from .deprecated import map_deprecated_flags
from .misc import check_runtime
from .model import check_recompute, resolve_model_features, resolve_model_shape
from .parallel import resolve_parallel_sizes, resolve_virtual_pipeline
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
    resolve_model_features,
    check_recompute,
    check_learning_rate,
    check_weight_decay,
    resolve_data_sources,
    check_runtime,
)


def validate_args(args: argparse.Namespace, world_size: int = 1) -> Resolution:
    """Check the parsed flags and derive the original's values; `args` itself is left unchanged."""
    resolution = Resolution(args=copy.deepcopy(args), world_size=world_size)
    for check in CHECKS:
        check(resolution)
    return resolution


__all__ = ["Resolution", "validate_args"]
