"""The vectorised blending order against the plain greedy loop it replaces, array for array."""

from __future__ import annotations

import numpy as np
import pytest
from gpt_data import blending
from gpt_data.blending import build_blending_indices, build_exhaustive_blending_indices


def reference_blend(weights: list[float], size: int, sizes: list[int] | None = None):
    """The original's greedy, step by step: argmax_k w_k * max(t, 1) - count_k, lowest k on ties;
    with `sizes`, a dataset leaves the candidates once spent."""
    counts = [0] * len(weights)
    candidates = list(range(len(weights)))
    dataset_index = np.zeros(size, dtype=np.int16)
    sample_index = np.zeros(size, dtype=np.int64)
    for t in range(size):
        td = float(t) if t > 1 else 1.0
        best, best_error = -1, -float("inf")
        for k in candidates:
            error = weights[k] * td - counts[k]
            if error > best_error:
                best, best_error = k, error
        dataset_index[t] = best
        sample_index[t] = counts[best]
        counts[best] += 1
        if sizes is not None and counts[best] == sizes[best]:
            candidates.remove(best)
    return dataset_index, sample_index


def normalized(raw: np.ndarray) -> list[float]:
    return (raw / raw.sum()).tolist()


def weight_cases(seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [
        normalized(rng.random(2)),
        normalized(rng.random(3) + 0.05),
        normalized(np.round(rng.random(5), 1) + 0.1),  # decimal weights: rounding decides ties
        normalized(np.ones(6)),  # equal weights: exact ties every step
        normalized(np.exp(rng.normal(0.0, 2.0, 8))),  # weights over several decades
        normalized(np.array([1e-4, 3e-3, 0.3, 0.7])),  # rare datasets: segments need repair
        normalized(rng.random(40) + 0.02),  # more datasets than the running max handles
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_blending_equals_the_greedy_loop_for_random_weights(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for weights in weight_cases(seed):
        size = int(rng.integers(20_000, 40_000))
        ours = build_blending_indices(weights, size)
        expected = reference_blend(weights, size)
        np.testing.assert_array_equal(ours[0], expected[0])
        np.testing.assert_array_equal(ours[1], expected[1])
        assert ours[0].dtype == np.int16 and ours[1].dtype == np.int64


@pytest.mark.parametrize("size", [1, 2, 3, 100, 1000, 9000])
def test_small_blends_equal_the_greedy_loop(size: int) -> None:
    weights = normalized(np.array([0.2, 0.5, 0.3, 1e-3]))
    ours = build_blending_indices(weights, size)
    expected = reference_blend(weights, size)
    np.testing.assert_array_equal(ours[0], expected[0])
    np.testing.assert_array_equal(ours[1], expected[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_blending_equals_the_greedy_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12_000, int(rng.choice([2, 3, 7, 35]))).tolist()
    sizes[0] = 3  # one tiny dataset, spent early
    total = sum(sizes)
    weights = [size / float(total) for size in sizes]
    ours = build_exhaustive_blending_indices(sizes)
    expected = reference_blend(weights, total, sizes)
    np.testing.assert_array_equal(ours[0], expected[0])
    np.testing.assert_array_equal(ours[1], expected[1])
    assert np.bincount(ours[0], minlength=len(sizes)).tolist() == sizes


def spy_on(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of a blending helper while still running it."""
    calls: list[int] = []
    original = getattr(blending, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(blending, name, counted)
    return calls


@pytest.mark.parametrize("datasets", [5, 40])
def test_segments_started_from_wrong_guesses_are_repaired(
    monkeypatch: pytest.MonkeyPatch, datasets: int
) -> None:
    # A one-step warm-up cannot absorb wrong guesses for rare datasets: many segments fail the
    # check and are re-run together from their predecessors' end states.
    rng = np.random.default_rng(7)
    raw = np.exp(rng.normal(0.0, 2.5, datasets))
    w = np.array(normalized(raw))
    advances = spy_on(monkeypatch, "_advance")
    ours = blending._greedy_segments(w, 30_000, None, warmup=1, segments=400)
    expected = reference_blend(w.tolist(), 30_000)
    assert len(advances) > 2  # warm-up, segments, then at least one repair round
    np.testing.assert_array_equal(ours[0], expected[0])
    np.testing.assert_array_equal(ours[1], expected[1])


def test_a_few_failed_segments_are_walked_with_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    w = np.array(normalized(np.array([2e-3, 0.4, 0.6])))
    loops = spy_on(monkeypatch, "_loop")
    ours = blending._greedy_segments(w, 20_000, None, warmup=1, segments=100)
    expected = reference_blend(w.tolist(), 20_000)
    assert loops  # some segment was re-run from its predecessor's end with the plain loop
    np.testing.assert_array_equal(ours[0], expected[0])
    np.testing.assert_array_equal(ours[1], expected[1])
