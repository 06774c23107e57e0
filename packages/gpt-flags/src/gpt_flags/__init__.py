"""gpt-flags: how every gpt-stack package declares its command-line flags.

A flag is a field of a frozen dataclass (`flag(...)`); a package's flag classes are collected with
`flag_classes(config_module)`, and `add_flag_groups(parser, classes)` puts them on any argparse
parser, one argument group per class `GROUP`. Standard library only, first in the import order.
"""

from gpt_flags.flagspec import (
    EFFECTIVE,
    MISSING,
    NEEDS_GPU,
    NO_EFFECT,
    NOT_IMPLEMENTED,
    STATUSES,
    FlagSpec,
    add_flag_groups,
    add_flags,
    default_of,
    flag,
    flag_classes,
    flag_fields,
    from_namespace,
    iter_specs,
    parse_layer_pattern,
    spec_of,
)

__all__ = [
    "EFFECTIVE",
    "MISSING",
    "NEEDS_GPU",
    "NO_EFFECT",
    "NOT_IMPLEMENTED",
    "STATUSES",
    "FlagSpec",
    "add_flag_groups",
    "add_flags",
    "default_of",
    "flag",
    "flag_classes",
    "flag_fields",
    "from_namespace",
    "iter_specs",
    "parse_layer_pattern",
    "spec_of",
]
