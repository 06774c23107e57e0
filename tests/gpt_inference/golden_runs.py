"""Loading the original's inference fixtures and their checkpoints (shared by the inference
and infer tests)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

#: Flags of the fixtures' command lines our CPU path has no use for (dropped, as the golden
#: README allows).
_PATH_PREFIXES = ("inference/", "checkpoints/")


def fixture(golden_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((golden_dir / "inference" / name).read_text())


def fixture_args(golden_dir: Path, data: dict[str, Any]) -> list[str]:
    """The fixture's `args`, paths made absolute."""
    return [str(golden_dir / a) if a.startswith(_PATH_PREFIXES) else a for a in data["args"]]


@cache
def generation_for(golden_dir: Path, name: str) -> Any:
    """`infer`'s setup (engine, tokenizer, ...) for a fixture, built once per process."""
    from gpt_infer_app.cli import parse_args
    from gpt_infer_app.setup import set_up

    return set_up(parse_args(fixture_args(golden_dir, fixture(golden_dir, name))))


def assert_close_lists(got: list[float], expected: list[float], what: str, tol: float = 1e-4):
    assert len(got) == len(expected), f"{what}: {len(got)} values, expected {len(expected)}"
    worst = max((abs(a - b) for a, b in zip(got, expected)), default=0.0)
    assert worst <= tol, f"{what}: off by {worst:.2e} (> {tol})"


def assert_matches(record: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    """Tokens and text exactly, log-probs within 1e-4, top-n dicts same keys and values."""
    for key, value in expected.items():
        assert key in record, f"{what}: no {key}"
        got = record[key]
        if key.endswith("log_probs") or key == "logprobs":
            if value and isinstance(value[0], list):
                for i, (g, e) in enumerate(zip(got, value, strict=True)):
                    assert_close_lists(g, e, f"{what} {key}[{i}]")
            else:
                assert_close_lists(got, value, f"{what} {key}")
        elif key.endswith("top_n_logprobs"):
            rows = value if value and isinstance(value[0], list) else [value]
            got_rows = got if value and isinstance(value[0], list) else [got]
            for g_row, e_row in zip(got_rows, rows, strict=True):
                assert len(g_row) == len(e_row), f"{what} {key}: length"
                for g, e in zip(g_row, e_row):
                    assert set(g) == set(e), f"{what} {key}: tokens {set(g)} != {set(e)}"
                    assert_close_lists([g[k] for k in e], list(e.values()), f"{what} {key}")
        else:
            assert_json_close(got, value, f"{what} {key}")


def assert_json_close(got: Any, expected: Any, what: str, tol: float = 1e-4) -> None:
    """Equal JSON values, floats within `tol`."""
    if isinstance(expected, float) and isinstance(got, int | float):
        assert abs(got - expected) <= tol, f"{what}: {got} != {expected}"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (
            f"{what}: keys {got} != {expected}"
        )
        for key in expected:
            assert_json_close(got[key], expected[key], f"{what}.{key}", tol)
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{what}: {got} != {expected}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_json_close(g, e, f"{what}[{i}]", tol)
    else:
        assert got == expected, f"{what}: {got!r} != {expected!r}"
