"""The shared reference files are required: where they are missing, a test that needs them fails
with one line naming the places looked at and the variable to set, unless the opt-out variable
turns that into a skip; they are found beside a checkout wherever it lies.

Each case runs pytest on a fake checkout (a copy of tests/conftest.py and one test that asks
for ``golden_dir``) in a scratch folder, with a controlled environment, as CI would run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
NEEDS_SHARED = """
def test_reads_the_golden_batch(golden_dir):
    assert (golden_dir / "first_batch.json").read_text() == "{}"
"""
VARIABLES = ("GPT_STACK_SHARED", "GPT_STACK_ALLOW_MISSING_SHARED")


def run_checkout(root: Path, **env: str) -> subprocess.CompletedProcess:
    """pytest on a fake checkout at ``root``, with only ``env`` of the shared-files variables."""
    tests = root / "checkout" / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CONFTEST, tests / "conftest.py")
    (tests / "test_needs_shared.py").write_text(NEEDS_SHARED)
    environ = {k: v for k, v in os.environ.items() if k not in VARIABLES} | env
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
    return subprocess.run(
        command, cwd=tests.parent, env=environ, capture_output=True, text=True, timeout=120
    )


def make_shared(folder: Path) -> Path:
    golden = folder / "reference" / "golden"
    golden.mkdir(parents=True)
    (golden / "first_batch.json").write_text("{}")
    return folder


def failure_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "shared reference files are missing" in line]


def test_missing_shared_files_fail_the_test_with_one_line_naming_the_places_looked_at(
    tmp_path: Path,
) -> None:
    run = run_checkout(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 error" in run.stdout and "passed" not in run.stdout and "skipped" not in run.stdout
    message = (
        "the shared reference files are missing: no reference/golden/first_batch.json in "
        f"{tmp_path / 'checkout' / 'shared'}, {tmp_path / 'shared'}, "
    )
    (line,) = [line for line in failure_lines(run.stdout) if not line.startswith("ERROR")]
    assert line.startswith(message)
    assert line.endswith(
        "; set GPT_STACK_SHARED to the shared/ folder "
        "(or GPT_STACK_ALLOW_MISSING_SHARED=1 to skip the tests that need it)"
    )
    assert "Traceback" not in run.stdout and "def test_" not in run.stdout  # the line alone


def test_a_wrong_shared_variable_fails_without_falling_back_to_a_copy_beside_the_checkout(
    tmp_path: Path,
) -> None:
    make_shared(tmp_path / "shared")
    run = run_checkout(tmp_path, GPT_STACK_SHARED=str(tmp_path / "elsewhere"))
    assert run.returncode == 1, run.stdout + run.stderr
    expected = f"first_batch.json in {tmp_path / 'elsewhere'}; set GPT_STACK_SHARED"
    assert any(expected in line for line in failure_lines(run.stdout)), run.stdout


@pytest.mark.parametrize("value", ["1", "true"])
def test_the_opt_out_variable_turns_the_failure_into_a_skip_with_the_same_line(
    tmp_path: Path, value: str
) -> None:
    run = run_checkout(tmp_path, GPT_STACK_ALLOW_MISSING_SHARED=value)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout and "error" not in run.stdout
    assert "SKIPPED" in failure_lines(run.stdout)[0]


def test_the_opt_out_variable_set_to_zero_still_fails(tmp_path: Path) -> None:
    run = run_checkout(tmp_path, GPT_STACK_ALLOW_MISSING_SHARED="0")
    assert run.returncode == 1 and "1 error" in run.stdout, run.stdout + run.stderr


def test_shared_beside_the_checkout_is_found_wherever_the_checkout_lies(tmp_path: Path) -> None:
    make_shared(tmp_path / "shared")
    run = run_checkout(tmp_path)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr


def test_the_shared_variable_names_a_folder_anywhere(tmp_path: Path) -> None:
    shared = make_shared(tmp_path / "elsewhere" / "copy")
    run = run_checkout(tmp_path, GPT_STACK_SHARED=str(shared))
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
