"""BlendedMegatronDatasetBuilder: the train/valid/test datasets of a config, blended as requested.

Per split: nothing (no bookends), one mid-level dataset (a single prefix), or a BlendedDataset
over one mid-level dataset per prefix. With weights, dataset k is built for
`ceil(ceil(size * w_k) * (1 + surplus))` samples and the blend holds `sum_k ceil(size * w_k)`;
without weights each dataset is one epoch and the blend weighs them by length.

Distributed use: pass this rank's global `rank` and a `barrier` callable. Rank 0 builds (and
writes the index caches), everyone meets at the barrier, then the other ranks build from the
caches. Ranks for which `is_built_on_rank()` is False take part in the barriers and get None.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gpt_data.blended_dataset import BlendedDataset
from gpt_data.dataset_config import BlendedMegatronDatasetConfig
from gpt_data.splits import Bookends, Split, normalize, split_indices

logger = logging.getLogger(__name__)

Sizes = Sequence[int | None]


def get_size_per_split_per_dataset(
    normalized_weights: Sequence[float], target_size_per_split: Sizes, surplus: float = 0.0
) -> list[list[int]]:
    """Samples to request from each dataset per split: `ceil(ceil(size * w) * (1 + surplus))`."""
    if not math.isclose(sum(normalized_weights), 1.0, rel_tol=1e-5, abs_tol=1e-8):
        raise ValueError(f"weights must be normalised, got {list(normalized_weights)}")
    return [
        [int(math.ceil(math.ceil(size * weight) * (1 + surplus))) for size in target_size_per_split]
        for weight in normalized_weights
    ]


class BlendedMegatronDatasetBuilder:
    """Builds `[train, valid, test]` for `cls` (e.g. GPTDataset) with the requested minimum sizes."""

    def __init__(
        self,
        cls: type,
        sizes: Sizes,
        is_built_on_rank: Callable[[], bool],
        config: BlendedMegatronDatasetConfig,
        *,
        rank: int = 0,
        barrier: Callable[[], None] | None = None,
    ) -> None:
        if len(sizes) != len(Split):
            raise ValueError(f"sizes must hold {len(Split)} entries (train, valid, test)")
        self.cls = cls
        self.sizes = list(sizes)
        self.is_built_on_rank = is_built_on_rank
        self.config = config
        self.rank = rank
        self.barrier = barrier
        if not config.mock:
            for split in Split:
                if config.blend_per_split is None or not any(config.blend_per_split):
                    blend = config.blend
                    if config.split_matrix[split.value] is None:
                        continue  # nothing is built for this split
                else:
                    blend = config.blend_per_split[split.value]
                    if blend is None:
                        continue
                if self.sizes[split.value] is None and blend is not None and blend[1] is not None:
                    raise ValueError(
                        f"the {split.name} split has blend weights but no requested size "
                        "(weights need a size; with --multiple-validation-sets give no weights)"
                    )

    @property
    def distributed(self) -> bool:
        return self.barrier is not None

    def build(self) -> list[Any]:
        """`[train, valid, test]`: each a dataset, a list of datasets (multiple validation sets) or None."""
        datasets = self._build_splits()
        for dataset in datasets:
            if isinstance(dataset, BlendedDataset):
                assert dataset.size is None or dataset.size == len(dataset)
        return datasets

    # -- the three cases of the original ------------------------------------------------------
    def _build_splits(self) -> list[Any]:
        config = self.config
        if config.mock:
            return self._build_mid_level_splits(None, config.split_matrix, self.sizes)
        if config.blend_per_split is None or not any(config.blend_per_split):
            return self._build_from_common_blend()
        return self._build_per_split_blends()

    def _build_from_common_blend(self) -> list[Any]:
        prefixes, weights = self.config.blend  # type: ignore[misc]
        matrix = self.config.split_matrix
        if weights is not None:
            weights = normalize(weights)
        if len(prefixes) == 1 and weights is None:
            return self._build_mid_level_splits(prefixes[0], matrix, self.sizes)
        if weights is None:
            buffer_sizes: list[list[int | None]] = [[None] * len(Split) for _ in prefixes]
        else:
            target_sizes = get_size_per_split_per_dataset(weights, self._sizes_or_zero())
            buffer_sizes = get_size_per_split_per_dataset(
                weights, self._sizes_or_zero(), self.config.mid_level_dataset_surplus
            )
        mid_level = self._build_mid_level_parallel(prefixes, matrix, buffer_sizes)
        blended: list[Any] = [None] * len(Split)
        for i in range(len(Split)):
            if matrix[i] is None:
                continue
            if weights is not None:
                size_i, weights_i = sum(row[i] for row in target_sizes), weights
            else:
                weights_i, size_i = self._length_weights(mid_level[i], self.sizes[i])
            blended[i] = self._build_generic(
                lambda here, i=i, w=weights_i, s=size_i: BlendedDataset(
                    mid_level[i], w, s, self.config, build_on_this_rank=here
                )
            )
        return blended

    def _build_per_split_blends(self) -> list[Any]:
        blended: list[Any] = [None] * len(Split)
        for i in range(len(Split)):
            blend = self.config.blend_per_split[i]  # type: ignore[index]
            if blend is None:
                continue
            matrix: list[Bookends | None] = [None] * len(Split)
            matrix[i] = (0.0, 1.0)
            sizes: list[int | None] = [0] * len(Split)
            sizes[i] = self.sizes[i]
            prefixes, weights = blend
            if weights is not None:
                weights = normalize(weights)
            if len(prefixes) == 1:
                blended[i] = self._build_mid_level_splits(prefixes[0], matrix, sizes)[i]
                continue
            if self.config.multiple_validation_sets and i == Split.valid.value:
                if self.config.full_validation and sizes[i] is not None:
                    raise ValueError("full validation needs no requested validation size")
                blended[i] = [self._build_mid_level_splits(p, matrix, sizes)[i] for p in prefixes]
                continue
            if weights is None:
                buffer_sizes: list[list[int | None]] = [[None] * len(Split) for _ in prefixes]
            else:
                target_sizes = get_size_per_split_per_dataset(weights, _zero_none(sizes))
                buffer_sizes = get_size_per_split_per_dataset(
                    weights, _zero_none(sizes), self.config.mid_level_dataset_surplus
                )
            mid_level = self._build_mid_level_parallel(prefixes, matrix, buffer_sizes)[i]
            if weights is not None:
                size_i, weights_i = sum(row[i] for row in target_sizes), weights
            else:
                weights_i, size_i = self._length_weights(mid_level, self.sizes[i])
            blended[i] = self._build_generic(
                lambda here, m=mid_level, w=weights_i, s=size_i: BlendedDataset(
                    m, w, s, self.config, build_on_this_rank=here
                )
            )
        return blended

    def _sizes_or_zero(self) -> list[int]:
        return _zero_none(self.sizes)

    @staticmethod
    def _length_weights(datasets: list[Any], size: int | None) -> tuple[list[int], int | None]:
        """Weights from dataset lengths; the size is capped at their sum (None: take everything)."""
        if any(d is None for d in datasets):
            return [0] * len(datasets), size
        lengths = [len(d) for d in datasets]
        return lengths, (None if size is None else min(size, sum(lengths)))

    # -- building mid-level datasets ----------------------------------------------------------
    def _build_mid_level_parallel(
        self,
        prefixes: Sequence[str],
        matrix: list[Bookends | None],
        sizes_per_dataset: list[list[int | None]],
    ) -> list[list[Any]]:
        """Per split, the list of mid-level datasets (one per prefix), built with a thread pool."""

        def build_all(workers: int) -> list[list[Any]]:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(self._build_mid_level_splits, p, matrix, s, False)
                    for p, s in zip(prefixes, sizes_per_dataset)
                ]
                results = [future.result() for future in futures]
            return [[r[i] for r in results] for i in range(len(Split))]

        workers = self.config.num_dataset_builder_threads
        if not self.distributed:
            return build_all(workers)
        per_split: list[list[Any]] = [[] for _ in Split]
        if self.rank == 0:
            per_split = build_all(workers)
        self.barrier()  # type: ignore[misc]
        if self.rank != 0:
            per_split = build_all(workers)
        return per_split

    def _build_mid_level_splits(
        self,
        dataset_path: str | None,
        matrix: list[Bookends | None],
        sizes: Sizes,
        synchronize_ranks: bool = True,
    ) -> list[Any]:
        """The mid-level dataset (or None) of each split of one low-level dataset."""
        if self.distributed and not self.is_built_on_rank():
            if synchronize_ranks:
                for bookends in matrix:
                    if bookends is not None:
                        self.barrier()  # type: ignore[misc]
            return [None] * len(Split)
        low_level = self.cls.build_low_level_dataset(dataset_path, self.config)
        num_elements = self.cls.numel_low_level_dataset(low_level)
        datasets: list[Any] = []
        for split in Split:
            bookends = matrix[split.value]
            if bookends is None:
                datasets.append(None)
                continue
            indices = split_indices(num_elements, bookends)
            datasets.append(
                self._build_generic(
                    lambda here, split=split, indices=indices: self.cls(
                        low_level,
                        dataset_path,
                        indices,
                        sizes[split.value],
                        split,
                        self.config,
                        build_on_this_rank=here,
                    ),
                    synchronize_ranks,
                )
            )
        return datasets

    def _build_generic(self, make: Callable[[bool], Any], synchronize_ranks: bool = True) -> Any:
        """Rank 0 builds first; after the barrier the other building ranks read its caches."""
        if not self.distributed:
            return make(True)
        dataset = None
        if self.rank == 0 and self.is_built_on_rank():
            dataset = make(True)
        if synchronize_ranks:
            self.barrier()  # type: ignore[misc]
        if self.rank != 0 and self.is_built_on_rank():
            dataset = make(False)
        return dataset


def _zero_none(sizes: Sizes) -> list[int]:
    """Sizes with None as 0, for splits that build nothing from the weighted datasets."""
    return [0 if size is None else int(size) for size in sizes]


def get_train_valid_test_num_samples(
    train_samples: int | None,
    train_iters: int | None,
    global_batch_size: int,
    eval_interval: int,
    eval_iters: int,
    full_validation: bool = False,
) -> tuple[int, int | None, int]:
    """Minimum samples per split (the original's training.py formula).

    train = train_samples or train_iters * gbs; valid = (train_iters // eval_interval + 1) *
    eval_iters * gbs, or None for full validation; test = eval_iters * gbs.
    """
    if train_samples:
        train = int(train_samples)
    elif train_iters is not None:
        train = train_iters * global_batch_size
    else:
        raise ValueError("either --train-samples or --train-iters is required")
    if full_validation:
        valid = None
    else:
        if train_iters is None:
            raise ValueError(
                "train_iters is needed for the validation size (derive it from --train-samples)"
            )
        valid = (train_iters // eval_interval + 1) * eval_iters * global_batch_size
    return train, valid, eval_iters * global_batch_size


def log_target_sizes(sizes: Sizes) -> list[str]:
    """The lines the original prints before building (" > datasets target sizes (minimum size):")."""
    return [
        " > datasets target sizes (minimum size):",
        f"    train:      {sizes[0]}",
        f"    validation: {sizes[1]}",
        f"    test:       {sizes[2]}",
    ]
