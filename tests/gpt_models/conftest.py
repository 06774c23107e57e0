"""Fixtures for the gpt-models tests: eager kernels by default, tiny configs, golden files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpt_models.kernels.compiled import NO_COMPILE_ENV

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "reference" / "golden"


@pytest.fixture(autouse=True)
def eager_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fused kernels run their plain functions unless a test turns compilation back on."""
    monkeypatch.setenv(NO_COMPILE_ENV, "1")


@pytest.fixture
def golden_dir() -> Path:
    """The original's golden outputs; tests that need them skip when they are absent."""
    if not (GOLDEN / "first_batch.json").is_file():
        pytest.skip("golden reference files are not available")
    return GOLDEN


@pytest.fixture
def first_batch(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "first_batch.json").read_text())
