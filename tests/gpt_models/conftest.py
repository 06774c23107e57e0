"""Fixtures for the gpt-models tests: eager kernels by default, tiny configs, golden files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpt_models.kernels.compiled import NO_COMPILE_ENV


@pytest.fixture(autouse=True)
def eager_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fused kernels run their plain functions unless a test turns compilation back on."""
    monkeypatch.setenv(NO_COMPILE_ENV, "1")


@pytest.fixture
def first_batch(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "first_batch.json").read_text())
