"""Time the blending index (which dataset serves each blended sample) against the plain loop.

Weights are random (seeded); both paths must give identical arrays, which the script checks.
`--no-loop` skips the slow plain loop (about 1-5 us per sample).

    uv run --frozen python tools/bench/blending.py [--samples N] [--datasets D] [--no-loop]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from gpt_data import blending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-loop", action="store_true", help="skip timing the plain loop")
    args = parser.parse_args()

    raw = np.random.default_rng(args.seed).random(args.datasets) + 0.1
    weights = (raw / raw.sum()).tolist()
    print(f"samples: {args.samples:,}  datasets: {args.datasets}")

    started = time.perf_counter()
    dataset_index, sample_index = blending.build_blending_indices(weights, args.samples)
    fast = time.perf_counter() - started
    print(f"vectorised: {fast:.2f} s ({fast / args.samples * 1e9:.0f} ns per sample)")
    if args.no_loop:
        return

    started = time.perf_counter()
    chosen, drawn = blending._loop(weights, None, [0] * args.datasets, 0, args.samples)
    loop = time.perf_counter() - started
    print(f"plain loop: {loop:.2f} s ({loop / args.samples * 1e9:.0f} ns per sample)")
    same = np.array_equal(dataset_index, chosen) and np.array_equal(sample_index, drawn)
    print(f"speedup: {loop / fast:.1f}x  identical arrays: {same}")
    if not same:
        raise SystemExit("the vectorised blend differs from the plain loop")


if __name__ == "__main__":
    main()
