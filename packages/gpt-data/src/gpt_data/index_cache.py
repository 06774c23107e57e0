"""On-disk cache of dataset indices, named by the md5 of a JSON description (the original's scheme).

Files: `{dir}/{md5}-{Class}-{split}-description.txt` and one `-{name}.npy` per array. A cache
entry counts only when all its files exist; each file is written under a temporary name and
renamed, and the description goes last, so an interrupted writer never leaves a complete-looking
entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from gpt_data.dataset_config import GPTDatasetConfig
    from gpt_data.splits import Split


class IndexCacheError(RuntimeError):
    """A cache entry that cannot be read or written; the message names the file."""


class IdentifiedDataset(Protocol):
    """What names a mid-level dataset's cache entry (GPTDataset, SFTDataset)."""

    dataset_path: str | None
    num_samples: int | None
    index_split: Split
    config: GPTDatasetConfig


def dataset_identifiers(dataset: IdentifiedDataset) -> OrderedDict:
    """The original MegatronDataset's identifiers: key order and values as it writes them, so
    `describe` gives the original's description and md5 (the cache file names)."""
    config = dataset.config
    ids: OrderedDict = OrderedDict()
    ids["class"] = type(dataset).__name__
    ids["dataset_path"] = dataset.dataset_path
    ids["num_samples"] = dataset.num_samples
    ids["index_split"] = dataset.index_split.name
    ids["random_seed"] = config.random_seed
    ids["sequence_length"] = config.sequence_length
    ids["split"] = config.split
    ids["split_matrix"] = config.split_matrix
    tokenizer = config.tokenizer_unique_identifiers
    ids["tokenizer"] = dict(tokenizer) if tokenizer is not None else None
    return ids


def describe(identifiers: Mapping[str, Any]) -> tuple[str, str]:
    """(description, md5 hex): `json.dumps(identifiers, indent=4)` and its md5, as the original."""
    description = json.dumps(identifiers, indent=4)
    return description, hashlib.md5(description.encode("utf-8")).hexdigest()


class IndexCache:
    """One cache entry: a description plus named numpy arrays."""

    def __init__(self, directory: str, stem: str, names: Sequence[str]) -> None:
        self.directory = directory
        self.stem = stem
        self.names = tuple(names)

    def path(self, suffix: str) -> str:
        return os.path.join(self.directory, f"{self.stem}-{suffix}")

    @property
    def description_path(self) -> str:
        return self.path("description.txt")

    def array_path(self, name: str) -> str:
        return self.path(f"{name}.npy")

    def exists(self) -> bool:
        paths = [self.description_path] + [self.array_path(name) for name in self.names]
        return all(os.path.isfile(path) for path in paths)

    def load(self) -> dict[str, np.ndarray]:
        """Memory-map every array of the entry."""
        arrays = {}
        for name in self.names:
            path = self.array_path(name)
            try:
                arrays[name] = np.load(path, allow_pickle=False, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise IndexCacheError(f"cannot read cached index {path}: {err}") from None
        return arrays

    def save(self, description: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write the arrays, then the description, each atomically."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            for name in self.names:
                _write_atomically(self.array_path(name), lambda f, a=arrays[name]: np.save(f, a))
            _write_atomically(self.description_path, lambda f: f.write(description.encode("utf-8")))
        except OSError as err:
            raise IndexCacheError(
                f"cannot write the index cache in {self.directory} ({err.strerror}); "
                "pass a writable --data-cache-path"
            ) from None


def _write_atomically(path: str, write: Any) -> None:
    temporary = f"{path}.{uuid.uuid4().hex[:12]}.partial"
    try:
        with open(temporary, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
