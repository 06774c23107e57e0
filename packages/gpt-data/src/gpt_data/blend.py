"""Blends from the command line: `--data-path` lists, `--data-args-path` and per-split files.

A blend is `(prefixes, weights)`; weights None means "weigh by each dataset's length".
"""

from __future__ import annotations

import json
from collections.abc import Sequence

Blend = tuple[list[str], list[float] | None]


def get_blend_from_list(items: Sequence[str] | None) -> Blend | None:
    """Read "p", "p1 p2 ...", or "w1 p1 w2 p2 ..." into a blend.

    An odd count is a list of prefixes. An even count is weight/prefix pairs, unless no weight
    slot parses as a float, in which case it is a list of prefixes too.
    """
    if items is None:
        return None
    items = list(items)
    if not items:
        raise ValueError("empty data path list")
    if len(items) % 2 == 1:
        return [item.strip() for item in items], None
    weights: list[float | None] = []
    for raw in items[0::2]:
        try:
            weights.append(float(raw))
        except ValueError:
            weights.append(None)
    if all(weight is None for weight in weights):
        return [item.strip() for item in items], None
    if any(weight is None for weight in weights):
        bad = next(raw for raw, w in zip(items[0::2], weights) if w is None)
        raise ValueError(
            f"data path list mixes weights and prefixes: {bad!r} is not a weight "
            "(give 'weight prefix' pairs or only prefixes)"
        )
    if any(weight <= 0 for weight in weights):  # type: ignore[operator]
        raise ValueError(f"data path weights must be positive, got {weights}")
    return [item.strip() for item in items[1::2]], [float(w) for w in weights]  # type: ignore[arg-type]


def read_data_args_file(path: str) -> list[str]:
    """`--data-args-path`: the `--data-path` list, whitespace-separated, in a file."""
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read().split()
    except OSError as err:
        raise ValueError(f"--data-args-path {path}: {err.strerror}") from None


def read_per_split_data_args_file(path: str) -> list[Blend | None]:
    """`--per-split-data-args-path`: JSON {"train": ..., "valid": ..., "test": ...}."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except OSError as err:
        raise ValueError(f"--per-split-data-args-path {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"--per-split-data-args-path {path}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--per-split-data-args-path {path}: expected a JSON object")
    blends: list[Blend | None] = []
    for split in ("train", "valid", "test"):
        if split not in data:
            raise ValueError(f"--per-split-data-args-path {path}: missing key {split!r}")
        value = data[split]
        if isinstance(value, str):
            value = value.split()
        blends.append(get_blend_from_list(value))
    return blends


def get_blend_and_blend_per_split(
    data_path: Sequence[str] | None = None,
    data_args_path: str | None = None,
    train_data_path: Sequence[str] | None = None,
    valid_data_path: Sequence[str] | None = None,
    test_data_path: Sequence[str] | None = None,
    per_split_data_args_path: str | None = None,
) -> tuple[Blend | None, list[Blend | None] | None]:
    """Resolve the data flags into `(blend, blend_per_split)`; both None means mock data."""
    if data_path is not None or data_args_path is not None:
        if data_path is not None and data_args_path is not None:
            raise ValueError("--data-path and --data-args-path are mutually exclusive")
        items = read_data_args_file(data_args_path) if data_args_path else data_path
        return get_blend_from_list(items), None
    per_split = (train_data_path, valid_data_path, test_data_path)
    if per_split_data_args_path is not None:
        if any(paths is not None for paths in per_split):
            raise ValueError(
                "--per-split-data-args-path and --(train|valid|test)-data-path are mutually exclusive"
            )
        return None, read_per_split_data_args_file(per_split_data_args_path)
    if any(paths is not None for paths in per_split):
        return None, [get_blend_from_list(paths) for paths in per_split]
    return None, None
