"""Mock data: the original's synthetic documents through the real indexing."""

from __future__ import annotations

import numpy as np
from gpt_data.builder import BlendedMegatronDatasetBuilder
from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.mock_dataset import MockGPTDataset, MockGPTLowLevelDataset


def test_mock_documents_are_counting_sequences_ending_in_eod() -> None:
    low = MockGPTLowLevelDataset(eod_id=50, vocab_size=40)
    expected_lengths = np.random.default_rng(0).integers(1, 4096, size=100000, dtype=np.int32)
    np.testing.assert_array_equal(low.sequence_lengths, expected_lengths)
    length = int(low.sequence_lengths[0])
    document = low[0]
    assert len(document) == length and document[-1] == 50
    assert document[:-1].tolist() == [(i + 1) % 40 for i in range(length - 1)]
    assert low.get(0, offset=2, length=3).tolist() == document[2:5].tolist()


def test_mock_builder_uses_an_even_split_and_writes_no_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = GPTDatasetConfig(random_seed=1234, sequence_length=64, eod_id=1000, vocab_size=1000)
    assert config.mock and config.split_matrix[0] == (0, 1 / 3)
    train, valid, test = BlendedMegatronDatasetBuilder(
        MockGPTDataset, [16, 8, 8], lambda: True, config
    ).build()
    assert all(isinstance(d, MockGPTDataset) for d in (train, valid, test))
    assert len(train.document_index) == 33333  # one epoch of the first third
    sample = train[0]
    assert sample["tokens"].shape == (64,) and int(sample["tokens"].max()) <= 1000
    assert sample["labels"][:-1].tolist() == sample["tokens"][1:].tolist()
    assert list(tmp_path.iterdir()) == []
