"""Fixtures for the gpt-models tests: tiny configs, golden files. Kernels run eagerly unless
a test builds its provider with ``compile="auto"`` (the library default is ``off``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def first_batch(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "first_batch.json").read_text())
