"""Shared fixtures: the golden corpus in a scratch directory and tiny hand-made corpora."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from gpt_data.indexed_dataset import IndexedDatasetBuilder

GOLDEN_PREFIX = "corpus/tiny_text_document"


@dataclass(frozen=True)
class Golden:
    """Where the original's outputs lie, and the exact flags of its `gpt` run."""

    directory: Path
    cache: Path
    args: dict[str, str]


def _parse_flags(args: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for i, item in enumerate(args):
        if item.startswith("--"):
            following = args[i + 1] if i + 1 < len(args) else "--"
            parsed[item] = "" if following.startswith("--") else following
    return parsed


@pytest.fixture
def golden(golden_dir: Path) -> Golden:
    args = json.loads((golden_dir / "gpt.json").read_text())["args"]
    cache = golden_dir / GOLDEN_PREFIX / "cache" / "GPTDataset_indices"
    return Golden(golden_dir, cache, _parse_flags(args))


@pytest.fixture
def golden_corpus(golden: Golden, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The golden .bin/.idx copied (without its cache) under ./corpus of a scratch working dir."""
    target = tmp_path / "corpus"
    target.mkdir()
    for suffix in (".bin", ".idx"):
        shutil.copyfile(
            golden.directory / f"{GOLDEN_PREFIX}{suffix}", target / f"tiny_text_document{suffix}"
        )
    monkeypatch.chdir(tmp_path)
    return GOLDEN_PREFIX


def write_corpus(prefix: str, documents: Sequence[np.ndarray], dtype: type = np.int32) -> str:
    """Write one-sequence documents to `prefix`.bin/.idx and return the prefix."""
    with IndexedDatasetBuilder(prefix + ".bin", dtype=dtype) as builder:
        for document in documents:
            builder.add_item(document)
            builder.end_document()
        builder.finalize(prefix + ".idx")
    return prefix


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[..., str]:
    """Factory: `make_corpus(name, lengths, eod=...)` writes documents whose last token is EOD."""

    def make(name: str, lengths: Sequence[int], eod: int = 999, first_token: int = 0) -> str:
        documents = []
        token = first_token
        for length in lengths:
            body = (np.arange(token, token + length - 1) % 900).astype(np.int32)
            token += length - 1
            documents.append(np.concatenate((body, [eod])).astype(np.int32))
        return write_corpus(str(tmp_path / name), documents)

    return make
