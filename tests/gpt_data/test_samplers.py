"""Samplers: which indices each data-parallel rank reads per step, and resuming mid-run."""

from __future__ import annotations

import itertools

import pytest
import torch
from gpt_data.samplers import (
    MegatronPretrainingRandomSampler,
    MegatronPretrainingSampler,
    RandomSeedDataset,
    build_pretraining_data_loader,
)


def test_single_sampler_gives_each_rank_its_slice_of_every_step() -> None:
    mbs, dp, gbs = 2, 3, 12  # two micro-batches per global batch
    per_rank = [list(MegatronPretrainingSampler(50, 0, mbs, r, dp)) for r in range(dp)]
    for r in range(dp):
        for step, batch in enumerate(per_rank[r]):
            t, m = divmod(step, gbs // (mbs * dp))  # iteration t (0-based), micro-batch m
            start = t * gbs + m * mbs * dp + r * mbs
            assert batch == [start, start + 1]
    assert len(per_rank[0]) == 50 // (mbs * dp)  # the last partial step is dropped


def test_single_sampler_resumes_from_consumed_samples() -> None:
    full = list(MegatronPretrainingSampler(40, 0, 2, 1, 2))
    resumed = list(MegatronPretrainingSampler(40, 12, 2, 1, 2))
    assert resumed == full[3:]


def test_single_sampler_can_keep_the_last_partial_step() -> None:
    batches = list(MegatronPretrainingSampler(11, 0, 2, 0, 2, drop_last=False))
    assert batches[-1] == [8, 9]
    assert list(MegatronPretrainingSampler(11, 0, 2, 1, 2, drop_last=False))[-1] == [10]


def test_single_sampler_rejects_exhausted_or_bad_settings() -> None:
    with pytest.raises(ValueError, match="no samples left"):
        MegatronPretrainingSampler(10, 10, 2, 0, 1)
    with pytest.raises(ValueError, match="rank 2 out of range"):
        MegatronPretrainingSampler(10, 0, 2, 2, 2)


@pytest.mark.parametrize("sharding", [True, False])
def test_cyclic_sampler_covers_the_epoch_once_across_ranks(sharding: bool) -> None:
    dp, mbs, total = 2, 3, 20  # 18 usable samples per epoch
    seen = []
    for r in range(dp):
        sampler = MegatronPretrainingRandomSampler(None, total, 0, mbs, r, dp, sharding)
        seen += [i for batch in itertools.islice(iter(sampler), 3) for i in batch]
    assert len(seen) == 18 and len(set(seen)) == 18 and max(seen) < 18


def test_cyclic_sampler_epoch_order_is_randperm_seeded_by_epoch() -> None:
    sampler = MegatronPretrainingRandomSampler(None, 8, 8, 2, 0, 1, data_sharding=False)
    batches = list(sampler)  # consumed 8 = one full epoch: this is epoch 1
    generator = torch.Generator()
    generator.manual_seed(1)
    assert [i for b in batches for i in b] == torch.randperm(8, generator=generator).tolist()
    assert sampler.epoch == 1 and sampler.consumed_samples == 16


def test_cyclic_sampler_resume_continues_the_same_sequence() -> None:
    first = MegatronPretrainingRandomSampler(None, 24, 0, 2, 1, 2)
    uninterrupted = list(itertools.islice(iter(first), 4))
    resumed = list(MegatronPretrainingRandomSampler(None, 24, 8, 2, 1, 2))
    assert resumed[:2] == uninterrupted[2:4]


def test_random_seed_dataset_reseeds_per_epoch_and_index() -> None:
    class Draw(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, idx):
            return torch.rand(1).item()

    wrapped = RandomSeedDataset(Draw(), seed=10)
    a = wrapped[1]
    wrapped.set_epoch(0)
    assert wrapped[1] == a
    wrapped.set_epoch(1)
    assert wrapped[0] == a  # seed 10 + 1 + 0 == 10 + 0 + 1


def test_data_loader_types() -> None:
    dataset = list(range(10))
    assert (
        build_pretraining_data_loader(
            dataset,
            0,
            dataloader_type="external",
            micro_batch_size=2,
            data_parallel_rank=0,
            data_parallel_size=1,
        )
        is dataset
    )
    loader = build_pretraining_data_loader(
        dataset,
        4,
        dataloader_type="single",
        micro_batch_size=2,
        data_parallel_rank=0,
        data_parallel_size=1,
        num_workers=0,
    )
    assert [b.tolist() for b in loader] == [[4, 5], [6, 7], [8, 9]]
    with pytest.raises(ValueError, match="dataloader-type"):
        build_pretraining_data_loader(
            dataset,
            0,
            dataloader_type="bogus",
            micro_batch_size=1,
            data_parallel_rank=0,
            data_parallel_size=1,
        )
    assert (
        build_pretraining_data_loader(
            None,
            0,
            dataloader_type="single",
            micro_batch_size=1,
            data_parallel_rank=0,
            data_parallel_size=1,
        )
        is None
    )


def test_full_validation_reads_the_whole_set_from_the_start() -> None:
    loader = build_pretraining_data_loader(
        list(range(7)),
        4,  # consumed validation samples are ignored: every round sees the whole set
        dataloader_type="single",
        micro_batch_size=2,
        data_parallel_rank=1,
        data_parallel_size=2,
        num_workers=0,
        full_validation=True,
    )
    assert [b.tolist() for b in loader] == [[2, 3]]


def test_worker_processes_give_the_same_batches_as_the_main_process() -> None:
    dataset = [torch.tensor([i, i * i]) for i in range(12)]
    batches = {}
    for workers in (0, 2):
        loader = build_pretraining_data_loader(
            dataset,
            2,
            dataloader_type="cyclic",
            micro_batch_size=2,
            data_parallel_rank=0,
            data_parallel_size=1,
            num_workers=workers,
        )
        assert loader.num_workers == workers
        batches[workers] = [b.tolist() for b in loader]
    assert batches[0] == batches[2] and len(batches[0]) == 5
