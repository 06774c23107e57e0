"""Flags owned by gpt-ssm: the Mamba mixer's sizes.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class MambaConfig:
    """The original's "experimental" flags owned here."""

    GROUP: ClassVar[str] = "experimental"

    mamba_state_dim: int = flag(
        128,
        "--mamba-state-dim",
        type=int,
        help="State dimension for Mamba layers.",
        status=NOT_IMPLEMENTED,
    )
    mamba_head_dim: int = flag(
        64,
        "--mamba-head-dim",
        type=int,
        help="Head dimension for Mamba layers.",
        status=NOT_IMPLEMENTED,
    )
    mamba_num_groups: int = flag(
        8,
        "--mamba-num-groups",
        type=int,
        help="Number of groups for Mamba layers.",
        status=NOT_IMPLEMENTED,
    )
    mamba_num_heads: int | None = flag(
        None,
        "--mamba-num-heads",
        type=int,
        help="Number of heads for Mamba layers.If not set, then the number of heads will be --hidden-size * expand // --mamba-head-dim",
        status=NOT_IMPLEMENTED,
    )
    disable_mamba_mem_eff_path: bool = flag(
        False,
        "--disable-mamba-mem-eff-path",
        action="store_true",
        help="Disable Mamba efficient path.",
        status=NOT_IMPLEMENTED,
    )
