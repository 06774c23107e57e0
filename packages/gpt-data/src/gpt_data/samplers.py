"""Batch samplers of the original (`--dataloader-type single|cyclic|external`), resumable.

Each yields, per step, this data-parallel rank's micro-batch of sample indices. Both resume from
`consumed_samples` (global samples already trained on), so a restarted run continues exactly
where it stopped.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

DATALOADER_TYPES = ("single", "cyclic", "external")


def _check_parallel(
    micro_batch_size: int, data_parallel_rank: int, data_parallel_size: int
) -> None:
    if micro_batch_size <= 0:
        raise ValueError(f"micro batch size must be positive, got {micro_batch_size}")
    if data_parallel_size <= 0:
        raise ValueError(f"data-parallel size must be positive, got {data_parallel_size}")
    if not 0 <= data_parallel_rank < data_parallel_size:
        raise ValueError(
            f"data-parallel rank {data_parallel_rank} out of range for size {data_parallel_size}"
        )


class MegatronPretrainingSampler:
    """`single`: one pass in order. Every `mbs * dp` consecutive indices form a step, of which
    rank r takes `[r * mbs, (r + 1) * mbs)`; the last partial step is dropped unless asked."""

    def __init__(
        self,
        total_samples: int,
        consumed_samples: int,
        micro_batch_size: int,
        data_parallel_rank: int,
        data_parallel_size: int,
        drop_last: bool = True,
    ) -> None:
        if total_samples <= 0:
            raise ValueError(f"no samples to consume: the dataset has {total_samples}")
        if consumed_samples >= total_samples:
            raise ValueError(
                f"no samples left to consume: {consumed_samples} consumed of {total_samples}"
            )
        _check_parallel(micro_batch_size, data_parallel_rank, data_parallel_size)
        self.total_samples = total_samples
        self.consumed_samples = consumed_samples
        self.micro_batch_size = micro_batch_size
        self.data_parallel_rank = data_parallel_rank
        self.micro_batch_times_data_parallel_size = micro_batch_size * data_parallel_size
        self.drop_last = drop_last

    def __len__(self) -> int:
        return self.total_samples

    def __iter__(self) -> Iterator[list[int]]:
        start = self.data_parallel_rank * self.micro_batch_size
        step = self.micro_batch_times_data_parallel_size
        first = self.consumed_samples
        full_steps = (self.total_samples - first) // step
        for s in range(full_steps):
            base = first + s * step + start
            yield list(range(base, base + self.micro_batch_size))
        remainder = first + full_steps * step
        if remainder < self.total_samples and not self.drop_last:
            batch = list(range(remainder, self.total_samples))
            yield batch[start : start + self.micro_batch_size]


class RandomSeedDataset(torch.utils.data.Dataset):
    """Seeds torch, numpy and random with `seed + epoch + idx` before each sample, so stochastic
    datasets repeat per (epoch, index); the cyclic sampler sets the epoch."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.base_seed = seed
        self.curr_seed = seed
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.curr_seed = self.base_seed + epoch

    def __getitem__(self, idx: int) -> Any:
        seed = idx + self.curr_seed
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        return self.dataset[idx]


class MegatronPretrainingRandomSampler:
    """`cyclic`: endless epochs, each a fresh `torch.randperm` seeded with the epoch number.

    The epoch and the position in it follow from `consumed_samples`, ignoring the last
    `total % (mbs * dp)` samples. With `data_sharding`, rank r shuffles only its own contiguous
    bucket; otherwise one global permutation is dealt round-robin to the ranks.
    """

    def __init__(
        self,
        dataset: Any,
        total_samples: int,
        consumed_samples: int,
        micro_batch_size: int,
        data_parallel_rank: int,
        data_parallel_size: int,
        data_sharding: bool = True,
    ) -> None:
        if total_samples <= 0:
            raise ValueError(f"no samples to consume: the dataset has {total_samples}")
        _check_parallel(micro_batch_size, data_parallel_rank, data_parallel_size)
        self.dataset = dataset
        self.total_samples = total_samples
        self.consumed_samples = consumed_samples
        self.micro_batch_size = micro_batch_size
        self.data_parallel_rank = data_parallel_rank
        self.data_parallel_size = data_parallel_size
        self.data_sharding = data_sharding
        self.micro_batch_times_data_parallel_size = micro_batch_size * data_parallel_size
        self.last_batch_size = total_samples % self.micro_batch_times_data_parallel_size
        if total_samples - self.last_batch_size <= 0:
            raise ValueError(
                f"{total_samples} samples cannot fill one step of {self.micro_batch_times_data_parallel_size}"
            )
        self.epoch = 0

    def __len__(self) -> int:
        return self.total_samples

    def __iter__(self) -> Iterator[list[int]]:
        active_total = self.total_samples - self.last_batch_size
        self.epoch = self.consumed_samples // active_total
        in_epoch = self.consumed_samples % active_total
        if in_epoch % self.micro_batch_times_data_parallel_size != 0:
            raise ValueError(
                f"consumed samples {self.consumed_samples} is not a whole number of steps "
                f"of {self.micro_batch_times_data_parallel_size}"
            )
        if isinstance(self.dataset, RandomSeedDataset):
            self.dataset.set_epoch(self.epoch)

        generator = torch.Generator()
        generator.manual_seed(self.epoch)
        if self.data_sharding:
            bucket_size = (
                self.total_samples // self.micro_batch_times_data_parallel_size
            ) * self.micro_batch_size
            bucket_offset = in_epoch // self.data_parallel_size
            start = self.data_parallel_rank * bucket_size
            order = torch.randperm(bucket_size, generator=generator).tolist()
            indices = [start + x for x in order[bucket_offset:]]
        else:
            full_bucket_size = (self.total_samples // self.micro_batch_size) * self.micro_batch_size
            order = torch.randperm(full_bucket_size, generator=generator).tolist()
            indices = order[in_epoch:][self.data_parallel_rank :: self.data_parallel_size]

        batch: list[int] = []
        for idx in indices:
            batch.append(idx)
            if len(batch) == self.micro_batch_size:
                self.consumed_samples += self.micro_batch_times_data_parallel_size
                yield batch
                batch = []


def build_pretraining_data_loader(
    dataset: Any,
    consumed_samples: int,
    *,
    dataloader_type: str,
    micro_batch_size: int,
    data_parallel_rank: int,
    data_parallel_size: int,
    num_workers: int = 2,
    data_sharding: bool = True,
    full_validation: bool = False,
    collate_fn: Any = None,
    worker_init_fn: Any = None,
) -> Any:
    """A DataLoader over `dataset` with the sampler of `dataloader_type` (None for no dataset).

    `external` returns the dataset itself: the user supplies an iterable loader.
    `full_validation` (for a validation set) iterates it whole from the start.
    """
    if dataset is None:
        return None
    if dataloader_type not in DATALOADER_TYPES:
        raise ValueError(
            f"--dataloader-type {dataloader_type!r}: expected one of {DATALOADER_TYPES}"
        )
    if full_validation:
        sampler: Any = MegatronPretrainingSampler(
            len(dataset), 0, micro_batch_size, data_parallel_rank, data_parallel_size
        )
    elif dataloader_type == "single":
        sampler = MegatronPretrainingSampler(
            len(dataset), consumed_samples, micro_batch_size, data_parallel_rank, data_parallel_size
        )
    elif dataloader_type == "cyclic":
        sampler = MegatronPretrainingRandomSampler(
            dataset,
            len(dataset),
            consumed_samples,
            micro_batch_size,
            data_parallel_rank,
            data_parallel_size,
            data_sharding,
        )
    else:
        return dataset
    kwargs: dict[str, Any] = {}
    if collate_fn is not None:
        kwargs["collate_fn"] = collate_fn
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        worker_init_fn=worker_init_fn,
        **kwargs,
    )
