"""Datasets and data iterators for the training loop (the original's
`build_train_valid_test_data_iterators` with pretrain_gpt's dataset provider).

From the resolved arguments and the tokenizer: the requested sizes per split, the dataset config
(GPTDatasetConfig, or SFTDatasetConfig with `--sft`), the datasets (GPTDataset, MockGPTDataset with
`--mock-data`, SFTDataset with `--sft`, blended as the data flags say), one DataLoader per dataset
whose sampler resumes from the consumed samples, and the iterators the loop pulls batches from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from gpt_data.blend import get_blend_and_blend_per_split
from gpt_data.builder import (
    BlendedMegatronDatasetBuilder,
    get_train_valid_test_num_samples,
    log_target_sizes,
)
from gpt_data.dataset_config import PAD_TOKEN_ID, GPTDatasetConfig
from gpt_data.gpt_dataset import GPTDataset
from gpt_data.mock_dataset import MockGPTDataset
from gpt_data.samplers import build_pretraining_data_loader
from gpt_data.sft_dataset import SFTDataset, SFTDatasetConfig
from gpt_data.token_check import check_token_ids, indexed_datasets_of
from gpt_parallel.microbatches import train_iters_for_samples

from .run_config import RunConfig, expect_typed

Log = Callable[[str], None]

BATCH_KEYS = ("tokens", "labels", "loss_mask", "attention_mask", "position_ids")
"""What a batch holds, in the order the original's get_batch reads it (attention_mask only when
the dataset creates one)."""


@dataclass(frozen=True)
class DataIterators:
    """The train iterator, one iterator per validation set, the test iterator (None where this
    rank has no such data), plus what the loop needs besides them.

    Unpacks like the original's triple: `train, valid, test = build_datasets_and_iterators(...)`.
    """

    train: Any
    valid: list[Any]
    test: Any
    valid_loaders: list[Any] = field(default_factory=list)
    """The validation DataLoaders (or datasets, for `external`), e.g. for full-validation lengths."""
    do_train: bool = False
    do_valid: bool = False
    do_test: bool = False
    """This rank's view of whether there is anything to train, validate and test on (the original
    broadcasts rank 0's flags to every rank)."""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.train, self.valid, self.test))


def tokenizer_fields(tokenizer: Any) -> dict[str, Any]:
    """eod, pad (-1 where the tokenizer has none) and the identifiers that enter the cache hash."""
    try:
        pad = tokenizer.pad
    except Exception:  # the original falls back on any failure to read it
        pad = None
    identifiers = getattr(tokenizer, "unique_identifiers", None)
    return {
        "eod_id": int(tokenizer.eod),
        "pad_id": PAD_TOKEN_ID if pad is None else int(pad),
        "tokenizer_unique_identifiers": None if identifiers is None else dict(identifiers),
    }


def resolved_train_iters(run: RunConfig) -> int | None:
    """`--train-iters`, or the iterations `--train-samples` implies (the original's
    update_train_iters, which runs before the datasets are built)."""
    if run.loop.train_iters or not run.loop.train_samples:
        return run.loop.train_iters
    return train_iters_for_samples(
        run.loop.train_samples,
        run.parallel.global_batch_size,
        run.parallel.micro_batch_size,
        run.distributed.data_parallel_size,
        run.parallel.rampup_batch_size,
        run.parallel.decrease_batch_size_if_needed,
    )


def requested_num_samples(run: RunConfig) -> tuple[int, int | None, int]:
    """Minimum samples per split: train, valid (None with --full-validation), test."""
    return get_train_valid_test_num_samples(
        train_samples=run.loop.train_samples,
        train_iters=resolved_train_iters(run),
        global_batch_size=run.parallel.global_batch_size,
        eval_interval=run.evaluation.eval_interval,
        eval_iters=run.evaluation.eval_iters,
        full_validation=run.validation_data.full_validation,
    )


def dataset_class(run: RunConfig) -> type:
    """pretrain_gpt's choice: SFTDataset with --sft, MockGPTDataset with --mock-data, else GPTDataset."""
    if run.sft.sft:
        return SFTDataset
    return MockGPTDataset if run.data.mock_data else GPTDataset


def dataset_config(run: RunConfig, tokenizer: Any) -> GPTDatasetConfig:
    """The flags mapped onto the dataset config (SFTDatasetConfig, holding the tokenizer, for --sft)."""
    blend, blend_per_split = get_blend_and_blend_per_split(
        data_path=run.data.data_path,
        data_args_path=run.data.data_args_path,
        train_data_path=run.data.train_data_path,
        valid_data_path=run.data.valid_data_path,
        test_data_path=run.data.test_data_path,
        per_split_data_args_path=run.data.per_split_data_args_path,
    )
    if blend is None and blend_per_split is None and not run.data.mock_data:
        raise ValueError(
            "no training data: give --data-path, --data-args-path, --train/valid/test-data-path, "
            "--per-split-data-args-path, or --mock-data"
        )
    if run.sft.sft and blend is None and blend_per_split is None:
        raise ValueError("--sft reads conversations from JSONL: give --data-path (not --mock-data)")
    fields: dict[str, Any] = dict(
        random_seed=run.seed.seed,
        sequence_length=run.data.seq_length,
        blend=blend,
        blend_per_split=blend_per_split,
        split=run.data.split,
        multiple_validation_sets=run.validation_data.multiple_validation_sets,
        full_validation=run.validation_data.full_validation,
        num_dataset_builder_threads=run.data.num_dataset_builder_threads,
        path_to_cache=run.data.data_cache_path,
        mmap_bin_files=run.data.mmap_bin_files,
        reset_position_ids=run.data.reset_position_ids,
        reset_attention_mask=run.data.reset_attention_mask,
        eod_mask_loss=run.data.eod_mask_loss,
        create_attention_mask=run.data.create_attention_mask_in_dataloader,
        mid_level_dataset_surplus=run.data.mid_level_dataset_surplus,
        **tokenizer_fields(tokenizer),
    )
    if run.sft.sft:
        return SFTDatasetConfig(tokenizer=tokenizer, **fields)
    if run.data.mock_data:
        fields["vocab_size"] = tokenizer.vocab_size
    return GPTDatasetConfig(**fields)


def build_datasets(
    run: RunConfig,
    tokenizer: Any,
    *,
    is_build_rank: bool,
    barrier: Callable[[], None] | None,
    rank: int | None = None,
    log: Log | None = None,
) -> tuple[Any, list[Any], Any]:
    """(train, [valid, ...], test) datasets; None where this rank builds nothing.

    Every rank calls this: with a `barrier`, global rank 0 builds first and writes the index
    caches, then the other ranks read them. Ranks with `is_build_rank` False get None.
    """
    sizes = requested_num_samples(run)
    if log:
        for line in log_target_sizes(sizes):
            log(line)
        log("> building train, validation, and test datasets for GPT ...")
    config = dataset_config(run, tokenizer)
    if barrier is None and not is_build_rank:
        return None, [None], None  # nothing to build and no other rank to meet
    builder = BlendedMegatronDatasetBuilder(
        dataset_class(run),
        sizes,
        lambda: is_build_rank,
        config,
        rank=_global_rank() if rank is None else rank,
        barrier=barrier,
    )
    train, valid, test = builder.build()
    valid = valid if isinstance(valid, list) else [valid]
    if is_build_rank and not run.data.mock_data and not run.sft.sft:
        check_vocabulary(train, valid, test, tokenizer.vocab_size)
    if log:
        log("> finished creating GPT datasets ...")
    return train, valid, test


TOKEN_SCAN_LIMIT_BYTES = 16 << 30
"""Corpora up to this size are scanned for out-of-vocabulary ids before training (about 5 s);
larger ones are checked batch by batch as they are read (see train_step.next_batch)."""


def check_vocabulary(train: Any, valid: list[Any], test: Any, vocab_size: int) -> None:
    """Stop with one line naming the `.bin` file when a token id is >= the tokenizer's vocabulary."""
    datasets = [d for d in [train, *valid, test] if d is not None]
    files = {
        os.path.realpath(indexed.path_prefix + ".bin"): indexed
        for indexed in indexed_datasets_of(datasets)
    }
    total = sum(os.path.getsize(path) for path in files)
    if total <= TOKEN_SCAN_LIMIT_BYTES:
        check_token_ids(list(files.values()), vocab_size)


def collate(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack the samples' tensors into a batch: tokens, labels, loss_mask, attention_mask (when
    the dataset makes one) and position_ids; other keys (a blend's dataset_id) are dropped."""
    first = samples[0]
    return {
        key: torch.stack([sample[key] for sample in samples]) for key in BATCH_KEYS if key in first
    }


def build_data_loader(
    dataset: Any,
    consumed_samples: int,
    run: RunConfig,
    *,
    dp_rank: int,
    dp_size: int,
    full_validation: bool = False,
) -> Any:
    """This data-parallel rank's loader, resuming after `consumed_samples` global samples."""
    return build_pretraining_data_loader(
        dataset,
        consumed_samples,
        dataloader_type=run.dataloader.dataloader_type,
        micro_batch_size=run.parallel.micro_batch_size,
        data_parallel_rank=dp_rank,
        data_parallel_size=dp_size,
        num_workers=run.data.num_workers,
        data_sharding=run.vision.data_sharding,
        full_validation=full_validation,
        collate_fn=collate,
    )


def cyclic(loader: Any) -> Iterator[Any]:
    """Iterate the loader again and again (each pass asks its sampler for a fresh epoch)."""
    while True:
        yield from loader


def as_iterator(dataloader_type: str, loader: Any) -> Any:
    """`single`: one pass; `cyclic`: endless passes; `external`: the user's object as it is."""
    if loader is None:
        return None
    if dataloader_type == "single":
        return iter(loader)
    if dataloader_type == "cyclic":
        return cyclic(loader)
    if dataloader_type == "external":
        return loader
    raise ValueError(f"--dataloader-type {dataloader_type!r}: expected single, cyclic or external")


def build_datasets_and_iterators(
    run: RunConfig,
    tokenizer: Any,
    *,
    dp_rank: int,
    dp_size: int,
    is_build_rank: bool,
    barrier: Callable[[], None] | None,
    consumed_train_samples: int = 0,
    consumed_valid_samples: int = 0,
    rank: int | None = None,
    log: Log | None = None,
) -> DataIterators:
    """Datasets, loaders and iterators for training, validation (one per set) and test.

    The train loader resumes after `consumed_train_samples`; validation loaders after
    `consumed_valid_samples`, or from 0 with `--skip-train` or `--full-validation`, as the
    original; the test loader always starts at 0.
    """
    expect_typed(run, RunConfig, "build_datasets_and_iterators")
    if log:
        log("> building train, validation, and test datasets ...")
    train_ds, valid_ds, test_ds = build_datasets(
        run, tokenizer, is_build_rank=is_build_rank, barrier=barrier, rank=rank, log=log
    )
    loader = dict(run=run, dp_rank=dp_rank, dp_size=dp_size)
    train_loader = (
        None
        if run.evaluation.skip_train
        else build_data_loader(train_ds, consumed_train_samples, **loader)
    )
    from_start = run.evaluation.skip_train or run.validation_data.full_validation
    if (
        run.validation_data.multiple_validation_sets
        and not from_start
        and any(d is not None for d in valid_ds)
    ):
        raise ValueError("--multiple-validation-sets currently requires --full-validation")
    valid_loaders = [
        build_data_loader(
            dataset,
            0 if from_start else consumed_valid_samples,
            full_validation=run.validation_data.full_validation,
            **loader,
        )
        for dataset in valid_ds
    ]
    test_loader = build_data_loader(test_ds, 0, **loader)

    kind = run.dataloader.dataloader_type
    # Validation sets evaluated whole each time are cycled, so every round starts a new pass.
    valid_kind = (
        "cyclic"
        if run.validation_data.multiple_validation_sets and run.validation_data.full_validation
        else kind
    )
    evaluates = run.validation_data.full_validation or run.evaluation.eval_iters > 0
    return DataIterators(
        train=as_iterator(kind, train_loader),
        valid=[as_iterator(valid_kind, v) for v in valid_loaders],
        test=as_iterator(kind, test_loader),
        valid_loaders=valid_loaders,
        do_train=train_loader is not None and (resolved_train_iters(run) or 0) > 0,
        do_valid=any(v is not None for v in valid_loaders) and evaluates,
        do_test=test_loader is not None and evaluates,
    )


def _global_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0
