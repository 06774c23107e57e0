"""Time building the GPTDataset indices for a large synthetic corpus, then loading them from cache.

Only sequence lengths exist (no tokens): 10 million documents of 1..1999 tokens (about 10 B
tokens), sequence length 4096, one training epoch requested in full (`--epochs` asks for more).

    uv run --frozen python tools/bench/gpt_indices.py [--documents N] [--seq-length S] [--epochs E]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.gpt_dataset import GPTDataset
from gpt_data.splits import Split


class LengthsOnly:
    """An IndexedDataset stand-in holding sequence lengths only (enough to build indices)."""

    path_prefix = None

    def __init__(self, num_documents: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.sequence_lengths = rng.integers(1, 2000, size=num_documents, dtype=np.int32)

    def get(self, idx: int, offset: int = 0, length: int | None = None) -> np.ndarray:
        raise NotImplementedError("the benchmark has no tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000_000)
    parser.add_argument("--seq-length", type=int, default=4096)
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs of samples to request")
    args = parser.parse_args()

    corpus = LengthsOnly(args.documents)
    tokens = int(corpus.sequence_lengths.sum(dtype=np.int64))
    num_samples = int(args.epochs * ((tokens - 1) // args.seq_length))
    with tempfile.TemporaryDirectory() as cache:
        config = GPTDatasetConfig(
            random_seed=1234,
            sequence_length=args.seq_length,
            blend=(["synthetic"], None),
            split="100,0,0",
            path_to_cache=cache,
            eod_id=0,
        )
        indices = np.arange(args.documents, dtype=np.int32)
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            dataset = GPTDataset(corpus, "synthetic", indices, num_samples, Split.train, config)
            timings.append(time.perf_counter() - started)
        print(f"documents: {args.documents:,}  tokens: {tokens:,}  seq length: {args.seq_length}")
        print(f"epochs: {len(dataset.document_index) // args.documents}")
        print(f"samples: {len(dataset):,}  (requested {num_samples:,})")
        print(f"first build (build + write cache): {timings[0]:.2f} s")
        print(f"second build (cache hit, mmap load): {timings[1]:.3f} s")


if __name__ == "__main__":
    main()
