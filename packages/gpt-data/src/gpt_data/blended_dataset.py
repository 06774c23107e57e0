"""BlendedDataset: several mid-level datasets of one split, interleaved by weight."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gpt_data.blending import build_blending_indices, build_exhaustive_blending_indices
from gpt_data.dataset_config import BlendedMegatronDatasetConfig
from gpt_data.index_cache import IndexCache, IndexCacheError, describe
from gpt_data.splits import normalize

logger = logging.getLogger(__name__)

_INDEX_NAMES = ("dataset_index", "dataset_sample_index")


class BlendedDataset(torch.utils.data.Dataset):
    """Sample t is `datasets[dataset_index[t]][dataset_sample_index[t]]` plus its `dataset_id`.

    With a `size`, weights are normalised and `size` samples are drawn greedily by weight. With
    `size` None, weights must be whole sample counts and every sample is taken exactly once.
    Indices are cached (under `path_to_cache` only) as `{md5}-BlendedDataset-{split}-*.npy`.
    """

    def __init__(
        self,
        datasets: Sequence[Any],
        weights: Sequence[float],
        size: int | None,
        config: BlendedMegatronDatasetConfig,
        *,
        build_on_this_rank: bool = True,
    ) -> None:
        if not datasets:
            raise ValueError("a BlendedDataset needs at least one dataset")
        if len(datasets) >= 32767:
            raise ValueError(f"too many datasets to blend: {len(datasets)} (at most 32766)")
        if len(datasets) != len(weights):
            raise ValueError(f"{len(datasets)} datasets but {len(weights)} weights")
        if any(type(d) is not type(datasets[0]) for d in datasets):
            raise ValueError("all blended datasets must be of the same class")
        if any(d.index_split != datasets[0].index_split for d in datasets):
            raise ValueError("all blended datasets must belong to the same split")
        if any(w <= 0 for w in weights):
            raise ValueError(f"blend weights must be positive, got {list(weights)}")
        if size is None and any(float(w) != int(w) for w in weights):
            raise ValueError("an exhaustive blend (no size) needs whole-number weights")
        if len(datasets) == 1:
            logger.warning("Building a BlendedDataset for a single dataset")

        self.datasets = list(datasets)
        self.split = datasets[0].index_split
        self.weights = normalize(list(weights)) if size is not None else list(weights)
        self.size = size
        self.config = config

        identifiers: OrderedDict = OrderedDict()
        identifiers["class"] = type(self).__name__
        identifiers["datasets"] = [d.unique_identifiers for d in self.datasets]
        identifiers["split"] = self.split.name
        identifiers["weights"] = self.weights
        identifiers["size"] = self.size
        self.unique_identifiers = identifiers
        self.unique_description, self.unique_description_hash = describe(identifiers)

        self.dataset_index, self.dataset_sample_index = self._indices(build_on_this_rank)

    def _indices(self, build_on_this_rank: bool) -> tuple[np.ndarray, np.ndarray]:
        cache = None
        if self.config.path_to_cache:
            stem = f"{self.unique_description_hash}-{type(self).__name__}-{self.split.name}"
            cache = IndexCache(self.config.path_to_cache, stem, _INDEX_NAMES)
            if cache.exists():
                arrays = cache.load()
                return arrays["dataset_index"], arrays["dataset_sample_index"]
            if not build_on_this_rank:
                raise IndexCacheError(
                    f"blend cache {cache.description_path} is missing on this rank; the building "
                    "rank must write it first"
                )
        if self.size is not None:
            dataset_index, sample_index = build_blending_indices(self.weights, self.size)
        else:
            dataset_index, sample_index = build_exhaustive_blending_indices(
                [int(w) for w in self.weights]
            )
        self._check_not_oversampled(dataset_index)
        if cache is not None:
            cache.save(
                self.unique_description,
                {"dataset_index": dataset_index, "dataset_sample_index": sample_index},
            )
        return dataset_index, sample_index

    def _check_not_oversampled(self, dataset_index: np.ndarray) -> None:
        drawn = np.bincount(dataset_index, minlength=len(self.datasets))
        for k, (count, dataset) in enumerate(zip(drawn, self.datasets)):
            if count > len(dataset):
                raise IndexError(
                    f"the {self.split.name} blend draws {count} samples from dataset {k} "
                    f"({getattr(dataset, 'dataset_path', '?')}) which has only {len(dataset)}; raise "
                    f"mid_level_dataset_surplus (now {self.config.mid_level_dataset_surplus})"
                )

    def __len__(self) -> int:
        return int(self.dataset_index.shape[0])

    def __getitem__(self, idx: int) -> dict[str, Any]:
        dataset_id = int(self.dataset_index[idx])
        sample_id = int(self.dataset_sample_index[idx])
        return {"dataset_id": dataset_id, **self.datasets[dataset_id][sample_id]}
