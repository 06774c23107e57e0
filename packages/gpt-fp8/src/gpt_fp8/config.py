"""Flags owned by gpt-fp8: FP8 recipes and the layers kept in higher precision.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class FP8Config:
    """The original's "Transformer-Engine" flags owned here."""

    GROUP: ClassVar[str] = "Transformer-Engine"

    fp8: str | None = flag(
        None,
        "--fp8-format",
        choices=("e4m3", "hybrid"),
        help="Which fp8 format scheme to use for FP8 tensors in the forward and backward pass",
        status=NOT_IMPLEMENTED,
    )
    fp8_recipe: str = flag(
        "delayed",
        "--fp8-recipe",
        choices=("tensorwise", "delayed", "mxfp8", "blockwise"),
        help="Which fp8 recipe to use for FP8 tensors in the forward and backward pass",
        status=NOT_IMPLEMENTED,
    )
    fp8_margin: int = flag(
        0, "--fp8-margin", type=int, help="Scaling margin for fp8", status=NOT_IMPLEMENTED
    )
    fp8_interval: int = flag(
        1,
        "--fp8-interval",
        type=int,
        help="DEPRECATED. This flag is ignored. Scaling update interval for fp8",
        status=EFFECTIVE,
        reason="deprecated: maps to nothing (ignored)",
        deprecated="-",
    )
    fp8_amax_history_len: int = flag(
        1,
        "--fp8-amax-history-len",
        type=int,
        help="Number of steps for which amax history is recorded per tensor",
        status=NOT_IMPLEMENTED,
    )
    fp8_amax_compute_algo: str = flag(
        "most_recent",
        "--fp8-amax-compute-algo",
        choices=("most_recent", "max"),
        help="Algorithm for computing amax from history",
        status=NOT_IMPLEMENTED,
    )
    fp8_wgrad: bool = flag(
        True,
        "--no-fp8-wgrad",
        action="store_false",
        help="Execute wgrad in higher precision even for FP8 runs",
        status=NOT_IMPLEMENTED,
    )
    fp8_param_gather: bool = flag(
        False,
        "--fp8-param-gather",
        action="store_true",
        help="Keep the compute param in fp8 (do not use any other intermediate dtype) and perform the param all-gather in fp8.",
        status=NOT_IMPLEMENTED,
    )
    first_last_layers_bf16: bool = flag(
        False,
        "--first-last-layers-bf16",
        action="store_true",
        help="Construct first and last layers in bf16 when doing FP8 training.",
        status=NOT_IMPLEMENTED,
    )
    num_layers_at_start_in_bf16: int = flag(
        1,
        "--num-layers-at-start-in-bf16",
        type=int,
        help="Number of layers at start to construct in bf16 when --first-last-layers-bf16 is enabled.",
        status=NOT_IMPLEMENTED,
    )
    num_layers_at_end_in_bf16: int = flag(
        1,
        "--num-layers-at-end-in-bf16",
        type=int,
        help="Number of layers at end to construct in bf16 when --first-last-layers-bf16 is enabled.",
        status=NOT_IMPLEMENTED,
    )
