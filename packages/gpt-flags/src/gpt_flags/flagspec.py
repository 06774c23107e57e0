"""Declare command-line flags once, as fields of frozen config dataclasses.

Every package owns its flags (DESIGN.md, "Flags and configs"). A flag is a dataclass field whose
metadata carries the argparse details, so the flag, the field and the help text cannot drift apart.
This module is the whole of `gpt-flags`, the first package of the dependency order (standard
library only), so that every package, torch-free ones included, declares its flags the same way
without installing anything else.

Each flag also carries its *status*, which the pretrain app turns into the `--flag-status` table and
into the guard that refuses a flag that is not implemented yet instead of silently ignoring it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MISSING = dataclasses.MISSING

#: The flag does what it says on this machine.
EFFECTIVE = "effective"
#: The flag acts only on a GPU, or with an optional GPU package, or a cluster service.
NEEDS_GPU = "needs GPU"
#: The flag has no meaning for GPT pretraining (BERT, T5, vision, retro, ...): accepted, warned about.
NO_EFFECT = "no effect in GPT pretraining"
#: Accepted by the parser; setting it to a non-default value stops the run.
NOT_IMPLEMENTED = "not implemented yet"

STATUSES = (EFFECTIVE, NEEDS_GPU, NO_EFFECT, NOT_IMPLEMENTED)


@dataclass(frozen=True)
class FlagSpec:
    """How one dataclass field appears on the command line."""

    names: tuple[str, ...]
    help: str = ""
    action: str = "store"
    type: Callable[[str], Any] | None = None
    nargs: str | int | None = None
    const: Any = None
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    status: str = NOT_IMPLEMENTED
    #: For NEEDS_GPU / NO_EFFECT: what it needs or why it does nothing. For EFFECTIVE: the test.
    reason: str = ""
    #: A deprecated spelling: parsed, then mapped to its replacement by the owner's from_args.
    deprecated: str = ""

    @property
    def name(self) -> str:
        return self.names[0]


def flag(
    default: Any,
    *names: str,
    help: str = "",
    action: str = "store",
    type: Callable[[str], Any] | None = None,
    nargs: str | int | None = None,
    const: Any = None,
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
    status: str = NOT_IMPLEMENTED,
    reason: str = "",
    deprecated: str = "",
) -> Any:
    """A dataclass field that is also a command-line flag (the field name is the argparse dest)."""
    if status not in STATUSES:
        raise ValueError(f"unknown flag status {status!r} for {names[0]}")
    spec = FlagSpec(
        names=tuple(names),
        help=help,
        action=action,
        type=type,
        nargs=nargs,
        const=const,
        choices=tuple(choices) if choices is not None else None,
        metavar=metavar,
        status=status,
        reason=reason,
        deprecated=deprecated,
    )
    if isinstance(default, list | dict | set):
        value = default
        return dataclasses.field(default_factory=lambda: type_copy(value), metadata={"flag": spec})
    return dataclasses.field(default=default, metadata={"flag": spec})


def type_copy(value: Any) -> Any:
    return value.copy()


def flag_fields(config_cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass that are command-line flags, in declaration order."""
    return [f for f in dataclasses.fields(config_cls) if "flag" in f.metadata]


def spec_of(field: dataclasses.Field) -> FlagSpec:
    return field.metadata["flag"]


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def add_flags(group: argparse._ActionsContainer, config_cls: type) -> None:
    """Add every flag field of `config_cls` to an argparse group."""
    for field in flag_fields(config_cls):
        spec = spec_of(field)
        kwargs: dict[str, Any] = {"dest": field.name, "default": default_of(field)}
        if spec.help:
            kwargs["help"] = spec.help
        if spec.action in ("store_true", "store_false"):
            kwargs["action"] = spec.action
        elif spec.action == "store_const":
            kwargs["action"] = "store_const"
            kwargs["const"] = spec.const
        else:
            if spec.action != "store":
                kwargs["action"] = spec.action
            if spec.type is not None:
                kwargs["type"] = spec.type
            if spec.nargs is not None:
                kwargs["nargs"] = spec.nargs
            if spec.const is not None:
                kwargs["const"] = spec.const
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
        group.add_argument(*spec.names, **kwargs)


def add_flag_groups(
    parser: argparse.ArgumentParser, config_classes: Iterable[type]
) -> argparse.ArgumentParser:
    """Add each class's flags to `parser`, in an argument group titled by the class's `GROUP`.

    Classes that share a `GROUP` share one argparse group, as in the original's `--help`.
    """
    groups: dict[str, argparse._ArgumentGroup] = {}
    for cls in config_classes:
        title = cls.GROUP
        if title not in groups:
            groups[title] = parser.add_argument_group(title=title)
        add_flags(groups[title], cls)
    return parser


def flag_classes(*modules: Any) -> tuple[type, ...]:
    """The config classes defined in `modules` that declare at least one flag, in source order.

    A package's `args.FLAG_CONFIGS` is this over its config modules, so a new flag class is
    picked up where it is written and no list of class names is kept by hand.
    """
    found: list[type] = []
    for module in modules:
        # A module's namespace keeps definition order; imported classes are skipped.
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and flag_fields(value)
            ):
                found.append(value)
    return tuple(found)


def from_namespace(config_cls: type, namespace: argparse.Namespace, **overrides: Any) -> Any:
    """Build a config from a parsed namespace: each flag field takes its parsed value."""
    values = {f.name: getattr(namespace, f.name) for f in flag_fields(config_cls)}
    values.update(overrides)
    return config_cls(**values)


def iter_specs(
    config_classes: Iterable[type],
) -> Iterable[tuple[type, dataclasses.Field, FlagSpec]]:
    for cls in config_classes:
        for field in flag_fields(cls):
            yield cls, field, spec_of(field)


def parse_layer_pattern(text: str | int) -> int | list[int]:
    """A per-layer pattern flag (`--moe-layer-freq`, `--no-rope-freq`): an int N, or a list expression.

    `"([0]*3+[1])*2"` gives `[0, 0, 0, 1, 0, 0, 0, 1]`. Only digits, brackets, parentheses, commas,
    `+` and `*` are allowed, and the expression is evaluated without `eval`.
    """
    import ast

    if isinstance(text, int):
        return text
    text = text.strip()
    if "[" not in text:
        return int(text)
    allowed = set("0123456789[](),+* ")
    if not set(text) <= allowed:
        raise ValueError(f"invalid layer pattern {text!r}: only digits , [ ] ( ) + * are allowed")

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(left, list) and isinstance(right, int) or isinstance(left, int):
                if isinstance(left, list) or isinstance(right, list):
                    return left * right
            raise ValueError(f"invalid layer pattern {text!r}")
        raise ValueError(f"invalid layer pattern {text!r}")

    result = value(ast.parse(text, mode="eval").body)
    if not isinstance(result, list) or not all(isinstance(v, int) for v in result):
        raise ValueError(f"invalid layer pattern {text!r}: expected a list of integers")
    return result
