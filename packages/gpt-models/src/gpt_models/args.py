"""Command-line flags of this package: its config classes, in the original's group order.

The pretrain app composes one parser from every package's `FLAG_CONFIGS`; `add_arguments` lets any
other program reuse this package's flags on a parser of its own.
"""

from __future__ import annotations

import argparse

from gpt_tokenizers.flagspec import add_flags

from .config import (
    ArchitectureConfig,
    DropoutConfig,
    HeterogeneousConfig,
    HybridConfig,
    InitConfig,
    LayerOptionsConfig,
    MLAConfig,
    NumericsConfig,
    QKNormConfig,
    TransformerImplConfig,
)

FLAG_CONFIGS: tuple[type, ...] = (
    ArchitectureConfig,
    DropoutConfig,
    LayerOptionsConfig,
    InitConfig,
    NumericsConfig,
    QKNormConfig,
    MLAConfig,
    HeterogeneousConfig,
    TransformerImplConfig,
    HybridConfig,
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add this package's flag groups to `parser`."""
    for cls in FLAG_CONFIGS:
        add_flags(parser.add_argument_group(title=cls.GROUP), cls)
    return parser
