"""Indexed datasets, GPT/SFT/mock datasets, blending, samplers, the preprocessing pipeline.

Names are imported lazily, so `gpt_data.indexed_dataset` (used by preprocessing workers) loads
without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BlendedDataset": "gpt_data.blended_dataset",
    "BlendedMegatronDatasetBuilder": "gpt_data.builder",
    "BlendedMegatronDatasetConfig": "gpt_data.dataset_config",
    "GPTDataset": "gpt_data.gpt_dataset",
    "GPTDatasetConfig": "gpt_data.dataset_config",
    "IndexCacheError": "gpt_data.index_cache",
    "IndexedDataset": "gpt_data.indexed_dataset",
    "IndexedDatasetBuilder": "gpt_data.indexed_dataset",
    "IndexedDatasetError": "gpt_data.indexed_dataset",
    "MegatronPretrainingRandomSampler": "gpt_data.samplers",
    "MegatronPretrainingSampler": "gpt_data.samplers",
    "MockGPTDataset": "gpt_data.mock_dataset",
    "MockGPTLowLevelDataset": "gpt_data.mock_dataset",
    "Split": "gpt_data.splits",
    "build_pretraining_data_loader": "gpt_data.samplers",
    "check_token_ids": "gpt_data.token_check",
    "find_dataset_prefixes": "gpt_data.merge",
    "get_blend_and_blend_per_split": "gpt_data.blend",
    "get_blend_from_list": "gpt_data.blend",
    "get_train_valid_test_num_samples": "gpt_data.builder",
    "merge_datasets": "gpt_data.merge",
    "merge_directory": "gpt_data.merge",
    "optimal_dtype": "gpt_data.indexed_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gpt_data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
