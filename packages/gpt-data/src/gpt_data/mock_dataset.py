"""Mock GPT data (`--mock-data`): synthetic documents run through the real GPTDataset indexing."""

from __future__ import annotations

import numpy as np

from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.gpt_dataset import GPTDataset


class MockGPTLowLevelDataset:
    """100000 documents with lengths `default_rng(0).integers(1, 4096)`; document i is
    `[1, 2, ..., len-1] (mod vocab_size)` followed by EOD."""

    seed: int = 0
    size: int = 100000
    max_sequence_length: int = 4096

    def __init__(self, eod_id: int, vocab_size: int | None = None) -> None:
        self.eod_id = eod_id
        self.vocab_size = vocab_size
        self.path_prefix = None
        rng = np.random.default_rng(seed=self.seed)
        self.sequence_lengths = rng.integers(
            low=1, high=self.max_sequence_length, size=self.size, dtype=np.int32
        )

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx: int) -> np.ndarray:
        length = int(self.sequence_lengths[idx])
        body = np.arange(1, length, dtype=np.int64)
        if self.vocab_size is not None:
            body %= self.vocab_size
        return np.concatenate((body, np.array([self.eod_id], dtype=np.int64)))

    def get(self, idx: int, offset: int = 0, length: int | None = None) -> np.ndarray:
        if length is None:
            length = int(self.sequence_lengths[idx]) - offset
        return self[idx][offset : offset + length]


class MockGPTDataset(GPTDataset):
    """GPTDataset over MockGPTLowLevelDataset (cached only when `path_to_cache` is set)."""

    @staticmethod
    def numel_low_level_dataset(low_level_dataset: MockGPTLowLevelDataset) -> int:
        return len(low_level_dataset)

    @staticmethod
    def build_low_level_dataset(
        dataset_path: str | None, config: GPTDatasetConfig
    ) -> MockGPTLowLevelDataset:
        return MockGPTLowLevelDataset(config.eod_id, config.vocab_size)
