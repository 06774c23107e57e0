"""tools/bench/ckpt.py --quick --size-mb 5 runs every format through the app's save and load
paths and prints the table the lead reads (its columns, a row per format and the disk)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench" / "ckpt.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_ckpt", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_quick_bench_prints_every_format_and_the_step_times(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPT_STACK_NO_COMPILE", "1")  # main() would set it for the whole session
    bench = load_bench()
    assert bench.main(["--quick", "--size-mb", "5", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("CPU: ")
    assert lines[1] == f"disk path: {tmp_path.resolve()}"
    header = lines.index(next(line for line in lines if line.startswith("| format")))
    assert cells(lines[header]) == list(bench.COLUMNS)
    rows = {cells(line)[0]: cells(line) for line in lines[header + 2 : header + 7]}
    assert set(rows) == {"disk (dd-like)", *bench.FORMATS}
    for row in rows.values():
        assert len(row) == len(bench.COLUMNS)
        assert all(float(value) > 0 for value in row[1:]), row
    steps = lines.index(next(line for line in lines if line.startswith("| pretrain run")))
    assert cells(lines[steps]) == list(bench.STEP_COLUMNS)
    step_rows = [cells(line) for line in lines[steps + 2 :]]
    assert [r[0].split(",")[0] for r in step_rows] == ["no save", "save every 2", "save every 2"]
    assert all(float(r[1]) > 0 for r in step_rows)
    assert list(tmp_path.iterdir()) == []  # the checkpoints and the disk file are removed
