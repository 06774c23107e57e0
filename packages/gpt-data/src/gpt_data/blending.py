"""Blending indices: which dataset, and which of its samples, serves each blended sample.

Greedy "largest deficit" order of the original's C++ helpers: at step t pick the dataset k that
maximises `w_k * max(t, 1) - count_k` (ties to the lowest index), so every prefix of the blend
follows the weights as closely as possible. The choice at each step depends on all earlier ones,
so this is a sequential scan; it runs in plain Python floats, which round exactly like the
original's doubles, at roughly a microsecond per sample for a few datasets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def build_blending_indices(weights: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(dataset_index int16, dataset_sample_index int64) for `size` samples drawn by `weights`."""
    w = [float(x) for x in weights]
    n = len(w)
    if n == 0 or n >= 32767:
        raise ValueError(f"a blend needs between 1 and 32766 datasets, got {n}")
    dataset_index = np.zeros(size, dtype=np.int16)
    dataset_sample_index = np.zeros(size, dtype=np.int64)
    if size == 0:
        return dataset_index, dataset_sample_index
    if n == 1:
        dataset_sample_index[:] = np.arange(size)
        return dataset_index, dataset_sample_index
    chosen = [0] * size
    drawn = [0] * size
    counts = [0] * n
    others = range(1, n)
    w0 = w[0]
    for t in range(size):
        td = float(t) if t > 1 else 1.0
        best = 0
        best_error = w0 * td - counts[0]
        for k in others:
            error = w[k] * td - counts[k]
            if error > best_error:
                best_error = error
                best = k
        chosen[t] = best
        drawn[t] = counts[best]
        counts[best] += 1
    dataset_index[:] = chosen
    dataset_sample_index[:] = drawn
    return dataset_index, dataset_sample_index


def build_exhaustive_blending_indices(sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Take every sample of every dataset exactly once, interleaved in proportion to `sizes`.

    Same greedy as `build_blending_indices` with weights `size_k / total`, except that a dataset
    leaves the candidates once all its samples are drawn.
    """
    sizes = [int(x) for x in sizes]
    n = len(sizes)
    if n == 0 or n >= 32767:
        raise ValueError(f"a blend needs between 1 and 32766 datasets, got {n}")
    if any(size <= 0 for size in sizes):
        raise ValueError(f"every blended dataset needs at least one sample, got sizes {sizes}")
    total = sum(sizes)
    dataset_index = np.zeros(total, dtype=np.int16)
    dataset_sample_index = np.zeros(total, dtype=np.int64)
    w = [size / float(total) for size in sizes]
    counts = [0] * n
    unspent = list(range(n))
    chosen = [0] * total
    drawn = [0] * total
    for t in range(total):
        td = float(t) if t > 1 else 1.0
        best = -1
        best_error = -float("inf")
        for k in unspent:
            error = w[k] * td - counts[k]
            if error > best_error:
                best_error = error
                best = k
        chosen[t] = best
        drawn[t] = counts[best]
        counts[best] += 1
        if counts[best] == sizes[best]:
            unspent.remove(best)
    dataset_index[:] = chosen
    dataset_sample_index[:] = drawn
    return dataset_index, dataset_sample_index
