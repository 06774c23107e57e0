"""Train/valid/test splits: the `--split` string, its bookend matrix, and the indices per split.

The float arithmetic follows the original step by step (numpy float64 normalisation, a running
Python sum starting from the integer 0), because the matrix is part of the cache description
whose md5 names the cache files.
"""

from __future__ import annotations

import re
from enum import Enum

import numpy as np

DEFAULT_SPLIT = "969, 30, 1"
"""The split the original sets when `--data-path` is given without `--split`."""

MOCK_SPLIT = "1,1,1"
"""The split used when no data path is given (mock data)."""

Bookends = tuple[float, float]


class Split(Enum):
    train = 0
    valid = 1
    test = 2


def normalize(weights: list[float]) -> list[float]:
    """Divide by the sum in float64, as the original does (and return Python floats)."""
    array = np.array(weights, dtype=np.float64)
    return (array / np.sum(array)).tolist()


def parse_and_normalize_split(split: str) -> list[float]:
    """ "90,10,0" -> [0.9, 0.1, 0.0]: every `[.0-9]+` run is a weight; missing ones are 0."""
    try:
        values = [float(match) for match in re.findall(r"[.0-9]+", split)]
    except ValueError:
        raise ValueError(f"--split {split!r}: every entry must be a number") from None
    if len(values) > len(Split):
        raise ValueError(f"--split {split!r}: at most {len(Split)} proportions")
    values += [0.0] * (len(Split) - len(values))
    if sum(values) <= 0:
        raise ValueError(f"--split {split!r}: the proportions must not all be zero")
    return normalize(values)


def convert_split_vector_to_split_matrix(
    vector_a: list[float], vector_b: list[float] | None = None
) -> list[Bookends | None]:
    """[0.99, 0.01, 0.0] -> [(0, 0.99), (0.99, 1.0), None]; with `vector_b`, the overlap of both."""
    if vector_b is None:
        vector_b = vector_a

    def expand(vector: list[float]) -> list[float]:
        running: list[float] = [0]
        for weight in vector:
            running.append(running[-1] + weight)
        return running

    expansion_a, expansion_b = expand(vector_a), expand(vector_b)
    matrix: list[Bookends | None] = []
    for i in range(len(vector_a)):
        begin = max(expansion_a[i], expansion_b[i])
        end = min(expansion_a[i + 1], expansion_b[i + 1])
        matrix.append(None if end <= begin else (begin, end))
    return matrix


def split_matrix_from_string(split: str) -> list[Bookends | None]:
    return convert_split_vector_to_split_matrix(parse_and_normalize_split(split))


def split_indices(num_elements: int, bookends: Bookends) -> np.ndarray:
    """The element indices a split covers: `arange(round(b*N), round(e*N))` as int32."""
    begin = int(round(bookends[0] * float(num_elements)))
    end = int(round(bookends[1] * float(num_elements)))
    return np.arange(begin, end, dtype=np.int32)
