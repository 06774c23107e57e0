"""The parser accepts every flag of the original with the same names, nargs, choices and defaults."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest
from gpt_flags.flagspec import flag_fields, from_namespace
from gpt_pretrain_app.cli import build_parser, parse_args
from gpt_pretrain_app.groups import ORIGINAL_GROUP_ORDER, flag_configs

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "tools" / "flags" / "original_flags.tsv"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ORIGINAL = _rows(TABLE)
BY_FLAG = {r["flag"]: r for r in ORIGINAL}


def _actions() -> dict[str, object]:
    parser = build_parser()
    return {opt: a for a in parser._actions for opt in a.option_strings}


def test_table_covers_the_seed_flag_list(shared_dir: Path):
    seed = shared_dir / "seed" / "flags.tsv"
    assert [r["flag"] for r in _rows(seed)] == [r["flag"] for r in ORIGINAL]


def test_every_flag_and_alias_is_accepted_with_the_original_dest():
    actions = _actions()
    assert len(ORIGINAL) == 513
    for row in ORIGINAL:
        names = [row["flag"], *[a for a in row["aliases"].split(",") if a]]
        for name in names:
            assert name in actions, name
            assert actions[name].dest == row["dest"], name


def test_nargs_choices_and_actions_match_the_original():
    actions = _actions()
    for row in ORIGINAL:
        action = actions[row["flag"]]
        kind = type(action).__name__
        if row["action"] == "store_true":
            assert kind == "_StoreTrueAction", row["flag"]
        elif row["action"] == "store_false":
            assert kind == "_StoreFalseAction", row["flag"]
        else:
            assert kind == "_StoreAction", row["flag"]
            assert (action.nargs or "") == row["nargs"], row["flag"]
        if row["choices"]:
            want = [
                c.split(".", 1)[1] if c.startswith("AttnBackend.") else c
                for c in row["choices"].split(",")
            ]
            assert [str(c) for c in action.choices] == want, row["flag"]


def _expected_default(row: dict[str, str]):
    if row["default"] == "AttnBackend.auto":
        return "auto"
    return ast.literal_eval(row["default"])


def test_defaults_match_the_original(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    args = parse_args([])
    for row in ORIGINAL:
        if row["flag"] in ("--local-rank", "--inprocess-active-world-size"):
            continue  # their defaults come from the environment, as in the original
        assert getattr(args, row["dest"]) == _expected_default(row), row["flag"]


def _sample(row: dict[str, str]) -> tuple[list[str], object]:
    """A command-line value for the flag and what it must parse to."""
    flag_name, action, kind, nargs = row["flag"], row["action"], row["type"], row["nargs"]
    if action == "store_true":
        return [flag_name], True
    if action == "store_false":
        return [flag_name], False
    if row["choices"]:
        choices = [c.split(".", 1)[-1] for c in row["choices"].split(",") if c != "None"]
        default = str(_expected_default(row))
        pick = next((c for c in reversed(choices) if c != default), choices[0])
        value: object = int(pick) if kind == "int" else pick
        return [flag_name, pick], [value] if nargs in ("+", "*") else value
    if kind in ("no_rope_freq_type", "moe_freq_type"):
        return [flag_name, "([0]*1+[1]*1)*2"], [0, 1, 0, 1]
    if kind == "bool":
        return [flag_name, "yes"], True
    one, value = {"int": ("7", 7), "float": ("0.25", 0.25)}.get(kind, ("some-value", "some-value"))
    if nargs in ("+", "*"):
        return [flag_name, one, one], [value, value]
    return [flag_name, one], value


@pytest.mark.parametrize("row", ORIGINAL, ids=[r["flag"] for r in ORIGINAL])
def test_each_flag_parses_into_its_config_field(row, tmp_path):
    argv, expected = _sample(row)
    if row["flag"] == "--yaml-cfg":
        path = tmp_path / "empty.yaml"
        path.write_text("{}\n")
        argv, expected = [row["flag"], str(path)], str(path)
    args = parse_args(argv)
    assert getattr(args, row["dest"]) == expected
    owners = [c for c in flag_configs() if row["dest"] in {f.name for f in flag_fields(c)}]
    assert len(owners) == 1, f"{row['flag']} must be owned by exactly one config class"
    (owner,) = owners
    assert owner.GROUP == row["group"]
    config = from_namespace(owner, args)
    assert getattr(config, row["dest"]) == expected


def test_groups_follow_the_original_order():
    parser = build_parser()
    titles = [g.title for g in parser._action_groups if g.title in ORIGINAL_GROUP_ORDER]
    assert titles == list(ORIGINAL_GROUP_ORDER)


def test_configs_are_frozen():
    import dataclasses

    for cls in flag_configs():
        assert cls.__dataclass_params__.frozen, cls
        config = from_namespace(cls, parse_args([]))
        field = flag_fields(cls)[0]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, field.name, None)
