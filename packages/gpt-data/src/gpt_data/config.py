"""Flags owned by gpt-data: data sources, splits, dataset options and loaders.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class DataloaderTypeConfig:
    """The original's "training" flags owned here."""

    GROUP: ClassVar[str] = "training"

    dataloader_type: str | None = flag(
        None,
        "--dataloader-type",
        choices=("single", "cyclic", "external"),
        help="Single pass vs multiple pass data loader",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class ValidationDataConfig:
    """The original's "validation" flags owned here."""

    GROUP: ClassVar[str] = "validation"

    full_validation: bool = flag(
        False,
        "--full-validation",
        action="store_true",
        help="If set, each time validation occurs it uses the full validation dataset(s). This currently only works for GPT datasets!",
        status=EFFECTIVE,
    )
    multiple_validation_sets: bool = flag(
        False,
        "--multiple-validation-sets",
        action="store_true",
        help="If set, multiple datasets listed in the validation split are evaluated independently with a separate loss for each dataset in the list. This argument requires that no weights are included in the list",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The original's "data and dataloader" flags owned here."""

    GROUP: ClassVar[str] = "data and dataloader"

    data_path: list[str] | None = flag(
        None,
        "--data-path",
        nargs="*",
        help="The weight and prefix list for a set of train, validation, and testdatasets which split according to --split. The accepted formats are: (1) a single prefix, (2) a list of weight prefix pairs e.g. weight1 prefix1 weight2 prefix2, (3) a list of prefixes e.g. prefix1 prefix2. For (3), weights are inferred from the lengths of the contributing datasets. This argument is exclusive to the other independent --*-data-path arguments.",
        status=EFFECTIVE,
    )
    split: str | None = flag(
        None,
        "--split",
        help="Comma-separated list of proportions for training, validation, and test split. For example the split `90,5,5` will use 90%% of data for training, 5%% for validation and 5%% for test.",
        status=EFFECTIVE,
    )
    train_data_path: list[str] | None = flag(
        None,
        "--train-data-path",
        nargs="*",
        help="The weight and prefix list for an independent train dataset. Follows the same pattern rules as --data- path.",
        status=EFFECTIVE,
    )
    valid_data_path: list[str] | None = flag(
        None,
        "--valid-data-path",
        nargs="*",
        help="The weight and prefix list for an independent validation dataset. Follows the same pattern rules as --data-path.",
        status=EFFECTIVE,
    )
    test_data_path: list[str] | None = flag(
        None,
        "--test-data-path",
        nargs="*",
        help="The weight and prefix list for an independent test dataset. Follows the same pattern rules as --data- path.",
        status=EFFECTIVE,
    )
    data_args_path: str | None = flag(
        None,
        "--data-args-path",
        help="Path to data-args. Instead of feeding `--data-path` with weighted dataset, we pass in a file path from which we read that argument. This is useful when the list of data is too big.",
        status=EFFECTIVE,
    )
    per_split_data_args_path: str | None = flag(
        None,
        "--per-split-data-args-path",
        help="Path to per-split-data-args. Instead of feeding `--(train|valid|test)-data-path` with weighted dataset, we pass in a file path from which we read those arguments. This is useful when the list of data is too big. Format is a json file with `train`, `valid, `test` keys",
        status=EFFECTIVE,
    )
    data_cache_path: str | None = flag(
        None,
        "--data-cache-path",
        help="Path to a directory to hold cached index files.",
        status=EFFECTIVE,
    )
    mmap_bin_files: bool = flag(
        True,
        "--no-mmap-bin-files",
        action="store_false",
        help="Disable mmap-ing of .bin files.",
        status=EFFECTIVE,
    )
    mock_data: bool = flag(
        False,
        "--mock-data",
        action="store_true",
        help="Skip data loading and validation and opt for artificial generation of mock data when an implementation is available.",
        status=EFFECTIVE,
    )
    seq_length: int | None = flag(
        None,
        "--seq-length",
        type=int,
        help="Maximum sequence length to process.",
        status=EFFECTIVE,
    )
    encoder_seq_length: int | None = flag(
        None,
        "--encoder-seq-length",
        type=int,
        help="Maximum encoder sequence length to process.This should be exclusive of --seq-length",
        status=EFFECTIVE,
    )
    num_workers: int = flag(
        2, "--num-workers", type=int, help="Dataloader number of workers.", status=EFFECTIVE
    )
    reset_position_ids: bool = flag(
        False,
        "--reset-position-ids",
        action="store_true",
        help="Reset posistion ids after end-of-document token.",
        status=EFFECTIVE,
    )
    reset_attention_mask: bool = flag(
        False,
        "--reset-attention-mask",
        action="store_true",
        help="Reset self attention maske after end-of-document token.",
        status=EFFECTIVE,
    )
    eod_mask_loss: bool = flag(
        False,
        "--eod-mask-loss",
        action="store_true",
        help="Mask loss for the end of document tokens.",
        status=EFFECTIVE,
    )
    create_attention_mask_in_dataloader: bool = flag(
        True,
        "--no-create-attention-mask-in-dataloader",
        action="store_false",
        help="If set, do not create attention_masks in dataloader.",
        status=EFFECTIVE,
    )
    num_dataset_builder_threads: int = flag(
        1,
        "--num-dataset-builder-threads",
        type=int,
        help="Number of parallel threads per rank for dataset builder",
        status=EFFECTIVE,
    )
    object_storage_cache_path: str | None = flag(
        None,
        "--object-storage-cache-path",
        help="Path to cache index files when using s3 or msc dataloader",
        status=NOT_IMPLEMENTED,
    )
    mid_level_dataset_surplus: float = flag(
        0.005,
        "--mid-level-dataset-surplus",
        type=float,
        help="The sample surplus to build for the mid-level datasets(s)",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class SFTDataConfig:
    """The original's "sft" flags owned here."""

    GROUP: ClassVar[str] = "sft"

    sft: bool = flag(
        False, "--sft", action="store_true", help="Megatron SFT training", status=EFFECTIVE
    )
