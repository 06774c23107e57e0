"""The command line: one parser composed of every package's flag groups, plus `--yaml-cfg`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from gpt_flags.flagspec import add_flags

from .errors import ArgsError
from .groups import ORIGINAL_GROUP_ORDER, flag_configs

if TYPE_CHECKING:
    from gpt_models.kernels.compiled import CompileChoice


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error: ...` line and exit code 2, never a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise ArgsError(message)


def build_parser(prog: str = "pretrain") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="GPT pretraining with every flag of Megatron-LM's pretrain_gpt.py.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--flag-status",
        action="store_true",
        help="Print, for every flag, whether it is effective, needs a GPU, has no effect in GPT "
        "pretraining or is not implemented yet, then exit.",
    )
    classes = flag_configs()
    for title in ORIGINAL_GROUP_ORDER:
        owned = [c for c in classes if c.GROUP == title]
        if not owned:
            continue
        group = parser.add_argument_group(title=title)
        for cls in owned:
            add_flags(group, cls)
    unknown = {c.GROUP for c in classes} - set(ORIGINAL_GROUP_ORDER)
    if unknown:
        raise RuntimeError(f"flag groups outside the original's order: {sorted(unknown)}")
    return parser


def _load_yaml(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a YAML file of settings: keys are dests (`num_layers`) or flags (`num-layers`).

    Nested mappings (the original's `language_model:` / `model_parallel:` sections) are flattened.
    """
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml is a dependency of the app
        raise ArgsError("--yaml-cfg needs the pyyaml package") from exc
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ArgsError(f"--yaml-cfg: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ArgsError(
            f"--yaml-cfg: {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ArgsError(f"--yaml-cfg: {path} must hold a mapping of settings")
    dests = {a.dest: a for a in parser._actions}
    flat: dict[str, Any] = {}

    def walk(mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            dest = str(key).lstrip("-").replace("-", "_")
            if dest in dests:
                flat[dest] = value
            elif isinstance(value, dict):
                walk(value)
            else:
                raise ArgsError(f"--yaml-cfg: {path}: unknown setting {key!r}")

    walk(data)
    flat.pop("yaml_cfg", None)
    for dest, value in flat.items():
        action = dests[dest]
        if action.choices is not None and value is not None:
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v not in action.choices and str(v) not in {str(c) for c in action.choices}:
                    raise ArgsError(
                        f"--yaml-cfg: {path}: {dest}={v!r} is not one of "
                        f"{', '.join(str(c) for c in action.choices)}"
                    )
        if action.type is not None and isinstance(value, str) and action.nargs is None:
            try:
                flat[dest] = action.type(value)
            except (TypeError, ValueError) as exc:
                raise ArgsError(f"--yaml-cfg: {path}: bad value for {dest}: {value!r}") from exc
    return flat


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; a `--yaml-cfg` file supplies values that flags on the line override."""
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    first = parser.parse_args(args)
    if getattr(first, "yaml_cfg", None):
        parser.set_defaults(**_load_yaml(first.yaml_cfg, parser))
        return parser.parse_args(args)
    return first


def compile_choice(environ: Mapping[str, str] = os.environ) -> CompileChoice:
    """Whether the model's fused regions compile: `GPT_STACK_COMPILE=auto|off`
    (`GPT_STACK_NO_COMPILE=1` = off), default auto. Read once here; the library never reads it."""
    from gpt_models.kernels.compiled import compile_choice_from_environment  # torch: not for --help

    try:
        return compile_choice_from_environment(environ)
    except ValueError as err:
        raise ArgsError(str(err)) from None


__all__ = ["build_parser", "compile_choice", "parse_args"]
