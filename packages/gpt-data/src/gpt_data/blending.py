"""Blending indices: which dataset, and which of its samples, serves each blended sample.

Greedy "largest deficit" order of the original's C++ helpers: at step t pick the dataset k that
maximises `w_k * max(t, 1) - count_k` (ties to the lowest index), so every prefix of the blend
follows the weights as closely as possible. The exhaustive variant draws every sample of every
dataset once: a dataset leaves the candidates when it is spent.

Each choice depends on all earlier ones, yet the scan parallelises exactly:
- the state at step t is the count vector, and two runs of the greedy from different states
  with the same total merge within a few steps (an over-served dataset waits while the others
  catch up), so `size` steps are cut into R segments and all segments advance together in numpy,
  each starting a warm-up of W steps before its segment from a guessed state (the counts
  `floor(w * t)` plus one for the largest remainders);
- the result is then proven exact: segment 0 starts from the true (zero) state, and segment k is
  exact when its state at its first step equals the state where segment k-1 ended. Segments that
  fail this check (mostly near the rare turns of datasets with tiny weights) are re-run from that
  end state, all together while many fail, then one after the other with the plain loop.
Every error is computed as `w_k * t - count_k` in float64, as the C++ and the plain loop do, so
the arrays are identical, not just close. Small blends use the plain loop. About 20x faster than
the loop: 10 M samples of 10 datasets take 0.6 s instead of 11.5 s (tools/bench/blending.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_MAX_DATASETS = 32766
_MIN_SEGMENTS = 8
"""Below this many segments the plain loop is faster than stepping segments together."""
_RUNNING_ARGMAX_LIMIT = 32
"""Up to this many datasets a column-wise running max beats `argmax(axis=0)`."""
_MAX_WARMUP = 256
"""Longer warm-ups cost more than repairing the segments that a rare dataset makes fail."""
_FEW_TO_REPAIR = 16
"""Fewer failed segments than this are repaired one after the other with the plain loop."""


def build_blending_indices(weights: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(dataset_index int16, dataset_sample_index int64) for `size` samples drawn by `weights`."""
    w = np.array([float(x) for x in weights], dtype=np.float64)
    _check_count(len(w))
    if size == 0:
        return np.zeros(0, dtype=np.int16), np.zeros(0, dtype=np.int64)
    if len(w) == 1:
        return np.zeros(size, dtype=np.int16), np.arange(size, dtype=np.int64)
    return _greedy(w, size, None)


def build_exhaustive_blending_indices(sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Take every sample of every dataset exactly once, interleaved in proportion to `sizes`.

    Same greedy as `build_blending_indices` with weights `size_k / total`, except that a dataset
    leaves the candidates once all its samples are drawn.
    """
    counts = [int(x) for x in sizes]
    _check_count(len(counts))
    if any(size <= 0 for size in counts):
        raise ValueError(f"every blended dataset needs at least one sample, got sizes {counts}")
    total = sum(counts)
    w = np.array([size / float(total) for size in counts], dtype=np.float64)
    return _greedy(w, total, np.array(counts, dtype=np.float64))


def _check_count(n: int) -> None:
    if n == 0 or n > _MAX_DATASETS:
        raise ValueError(f"a blend needs between 1 and {_MAX_DATASETS} datasets, got {n}")


Blend = tuple[np.ndarray, np.ndarray]


def _greedy(w: np.ndarray, size: int, capacity: np.ndarray | None) -> Blend:
    """(dataset chosen, its sample number) at each of `size` steps; capacity: samples per dataset."""
    n = len(w)
    positive = w[w > 0]
    smallest = float(positive.min()) if positive.size else 1.0
    # Long enough for most datasets to take a turn; rarer ones may fail to merge and are repaired.
    warmup = min(max(16, math.ceil(0.5 / smallest)), _MAX_WARMUP)
    wanted = 8192 if n <= _RUNNING_ARGMAX_LIMIT else 128
    segments = min(wanted, (size - warmup) // (4 * warmup)) if size > warmup else 0
    if segments < _MIN_SEGMENTS:
        counts = [0] * n
        chosen, drawn = _loop(w.tolist(), _limits(capacity), counts, 0, size)
        return np.array(chosen, dtype=np.int16), np.array(drawn, dtype=np.int64)
    return _greedy_segments(w, size, capacity, warmup, segments)


def _limits(capacity: np.ndarray | None) -> list[int] | None:
    return None if capacity is None else [int(c) for c in capacity]


def _loop(
    weights: list[float], limits: list[int] | None, counts: list[int], first_step: int, steps: int
) -> tuple[list[int], list[int]]:
    """The greedy one step at a time from `counts` (updated in place), in Python floats, which
    round like the C++ doubles: the definition the vectorised path must reproduce."""
    candidates = [k for k in range(len(weights)) if limits is None or counts[k] < limits[k]]
    chosen = [0] * steps
    drawn = [0] * steps
    for i in range(steps):
        t = first_step + i
        td = float(t) if t > 1 else 1.0
        best = -1
        best_error = -math.inf
        for k in candidates:
            error = weights[k] * td - counts[k]
            if error > best_error:
                best_error = error
                best = k
        chosen[i] = best
        drawn[i] = counts[best]
        counts[best] += 1
        if limits is not None and counts[best] == limits[best]:
            candidates.remove(best)
    return chosen, drawn


def _greedy_segments(
    w: np.ndarray, size: int, capacity: np.ndarray | None, warmup: int, segments: int
) -> Blend:
    """The greedy over `segments` segments stepped together, checked and repaired until exact."""
    length = -(-(size - warmup) // segments)
    starts = (warmup + np.arange(segments) * length).astype(np.float64)
    counts = _guess_counts(w, starts - warmup, capacity)  # (datasets, segments)
    counts[:, 0] = 0.0  # segment 0 starts its warm-up at step 0: the true state
    # Segment 0 owns the warm-up steps [0, warmup); segment k then owns the steps
    # [warmup + k * length, warmup + (k + 1) * length), one row each.
    chosen = np.empty(warmup + segments * length, dtype=np.int16)
    drawn = np.empty(warmup + segments * length, dtype=np.int64)
    rows_chosen = chosen[warmup:].reshape(segments, length)
    rows_drawn = drawn[warmup:].reshape(segments, length)
    warm_chosen = np.empty((segments, warmup), dtype=np.int16)
    warm_drawn = np.empty((segments, warmup), dtype=np.int64)
    _advance(w, capacity, counts, starts - warmup, warm_chosen, warm_drawn)
    chosen[:warmup] = warm_chosen[0]
    drawn[:warmup] = warm_drawn[0]
    begin = counts.copy()  # each segment's state at its first step
    _advance(w, capacity, counts, starts, rows_chosen, rows_drawn)
    while True:
        # Segment k is exact if segment k-1 is and ended in the state segment k began from.
        bad = np.flatnonzero(np.any(counts[:, :-1] != begin[:, 1:], axis=0)) + 1
        if bad.size == 0:
            break
        if bad.size < _FEW_TO_REPAIR and len(w) <= _RUNNING_ARGMAX_LIMIT:
            # A short chain: walking it with the plain loop is cheaper than stepping it.
            weights, limits = w.tolist(), _limits(capacity)
            for k in range(int(bad[0]), segments):
                if np.array_equal(counts[:, k - 1], begin[:, k]):
                    continue
                begin[:, k] = counts[:, k - 1]
                state = [int(c) for c in begin[:, k]]
                rows_chosen[k], rows_drawn[k] = _loop(
                    weights, limits, state, int(starts[k]), length
                )
                counts[:, k] = state
            break
        begin[:, bad] = counts[:, bad - 1]
        redo = np.ascontiguousarray(begin[:, bad])
        redo_chosen = np.empty((bad.size, length), dtype=np.int16)
        redo_drawn = np.empty((bad.size, length), dtype=np.int64)
        _advance(w, capacity, redo, starts[bad], redo_chosen, redo_drawn)
        rows_chosen[bad] = redo_chosen
        rows_drawn[bad] = redo_drawn
        counts[:, bad] = redo
    return chosen[:size], drawn[:size]


def _guess_counts(w: np.ndarray, steps: np.ndarray, capacity: np.ndarray | None) -> np.ndarray:
    """A likely state at each step: `floor(w * t)`, plus one for the largest remainders."""
    ideal = w[:, None] * steps[None, :]
    counts = np.floor(ideal)
    extra = np.clip(steps - counts.sum(axis=0), 0, len(w))
    order = np.argsort(counts - ideal, axis=0, kind="stable")  # largest remainder first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(len(w))[:, None], axis=0)
    counts += rank < extra[None, :]
    if capacity is not None:
        np.minimum(counts, capacity[:, None], out=counts)
    return counts


def _advance(
    w: np.ndarray,
    capacity: np.ndarray | None,
    counts: np.ndarray,
    first_step: np.ndarray,
    chosen: np.ndarray,
    drawn: np.ndarray,
) -> None:
    """Run the greedy for `len(chosen)` steps in every column of `counts` at once.

    Column j starts at step `first_step[j]`; `counts` (datasets x columns, float64 holding whole
    numbers) is updated in place; the choices and their sample numbers go to `chosen` and
    `drawn` (columns x steps).
    """
    n, columns = counts.shape
    flat = counts.reshape(-1)
    column = np.arange(columns)
    weight = w[:, None]
    limit = None if capacity is None else capacity[:, None]
    step_f = np.empty(columns)
    errors = np.empty((n, columns))
    best = np.empty(columns)
    better = np.empty(columns, dtype=bool)
    choice = np.empty(columns, dtype=np.intp)
    for step in range(chosen.shape[1]):
        np.add(first_step, step, out=step_f)
        if step == 0:
            np.maximum(step_f, 1.0, out=step_f)  # steps 0 and 1 both weigh by 1
        np.multiply(weight, step_f, out=errors)
        np.subtract(errors, counts, out=errors)
        if limit is not None:
            np.putmask(errors, counts >= limit, -np.inf)  # spent datasets leave the candidates
        if n <= _RUNNING_ARGMAX_LIMIT:
            # First maximum of each column, with a strict ">" so ties keep the lowest index.
            best[:] = errors[0]
            choice.fill(0)
            for k in range(1, n):
                np.greater(errors[k], best, out=better)
                np.maximum(best, errors[k], out=best)
                np.putmask(choice, better, k)
        else:
            choice = errors.argmax(axis=0)
        where = choice * columns + column
        taken = flat[where]
        flat[where] = taken + 1.0
        chosen[:, step] = choice
        drawn[:, step] = taken
