"""Runtime configs for building datasets (field names follow the original's dataclasses).

These are the library's own small configs: the application maps its flags onto them
(`--seed` -> random_seed, `--seq-length` -> sequence_length, `--data-cache-path` -> path_to_cache,
`--no-mmap-bin-files` -> mmap_bin_files=False, `--no-create-attention-mask-in-dataloader` ->
create_attention_mask=False, the rest by their argparse dest). The tokenizer is not an object
here: its eod/pad ids and its `unique_identifiers` (which enter the cache hash) are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpt_data.blend import Blend
from gpt_data.splits import MOCK_SPLIT, Bookends, Split, split_matrix_from_string

PAD_TOKEN_ID = -1
"""The pad id when the tokenizer has none (the original's `_PAD_TOKEN_ID`)."""


@dataclass(frozen=True, kw_only=True)
class BlendedMegatronDatasetConfig:
    """What every mid-level dataset and the blending builder need."""

    random_seed: int
    """Seed of the index shuffles (`--seed`)."""

    sequence_length: int
    """Tokens per sample (`--seq-length`)."""

    blend: Blend | None = None
    """(prefixes, weights or None) drawn from by `split`; excludes `blend_per_split`."""

    blend_per_split: list[Blend | None] | None = None
    """One blend per split (train, valid, test), each used whole; excludes `blend` and `split`."""

    multiple_validation_sets: bool = False
    """With `blend_per_split`: keep each validation prefix as its own dataset."""

    full_validation: bool = False
    """Validation runs over the whole validation set each time (its size is then None)."""

    split: str | None = None
    """The `--split` string, e.g. "969, 30, 1"; kept verbatim because it enters the cache hash."""

    num_dataset_builder_threads: int = 1
    """Threads used to build the mid-level datasets of a blend."""

    path_to_cache: str | None = None
    """Where index caches go (`--data-cache-path`); default `{prefix}/cache/GPTDataset_indices`."""

    mmap_bin_files: bool = True
    """Memory-map `.bin` files (False: positional reads)."""

    tokenizer_unique_identifiers: Mapping[str, Any] | None = None
    """The tokenizer's `unique_identifiers` dict: serialised under "tokenizer" in the cache
    description, so it must equal the original's for cache names to match."""

    mid_level_dataset_surplus: float = 0.005
    """Extra fraction of samples built per blended dataset (`--mid-level-dataset-surplus`)."""

    split_matrix: list[Bookends | None] | None = field(init=False)
    """Bookends per split, derived from `split` (None with per-split blends)."""

    mock: bool = field(init=False)
    """True when neither blend is given: synthetic data."""

    def __post_init__(self) -> None:
        if self.sequence_length < 2:
            raise ValueError(f"sequence_length must be at least 2, got {self.sequence_length}")
        if self.mid_level_dataset_surplus < 0:
            raise ValueError("mid_level_dataset_surplus must be non-negative")
        if self.num_dataset_builder_threads < 1:
            raise ValueError("num_dataset_builder_threads must be at least 1")
        split = self.split
        mock = False
        if self.blend_per_split is not None and any(self.blend_per_split):
            if self.blend is not None:
                raise ValueError("blend and blend_per_split are mutually exclusive")
            if split is not None:
                raise ValueError("split cannot be used with per-split data paths")
            if len(self.blend_per_split) != len(Split):
                raise ValueError(
                    f"blend_per_split must hold {len(Split)} blends (train, valid, test)"
                )
            for blend in self.blend_per_split:
                if blend is not None:
                    _check_blend(blend)
            matrix: list[Bookends | None] | None = None  # each split is used whole
        else:
            if self.blend is not None:
                _check_blend(self.blend)
                if split is None:
                    raise ValueError("a split is required when a blend is given")
            else:
                mock = True
                split = MOCK_SPLIT
            matrix = split_matrix_from_string(split)
        object.__setattr__(self, "split", split)
        object.__setattr__(self, "split_matrix", matrix)
        object.__setattr__(self, "mock", mock)


def _check_blend(blend: Blend) -> None:
    prefixes, weights = blend
    if not prefixes:
        raise ValueError("a blend needs at least one dataset prefix")
    if weights is not None and len(weights) != len(prefixes):
        raise ValueError(f"blend has {len(prefixes)} prefixes but {len(weights)} weights")


@dataclass(frozen=True, kw_only=True)
class GPTDatasetConfig(BlendedMegatronDatasetConfig):
    """Config of GPT datasets: sample layout and the masks built with each sample."""

    eod_id: int
    """The tokenizer's end-of-document id (masks and position resets look for it)."""

    pad_id: int = PAD_TOKEN_ID
    """The tokenizer's pad id, or -1; pad labels get loss mask 0 and are replaced by 0."""

    vocab_size: int | None = None
    """Only for mock data: token ids are taken modulo this size."""

    reset_position_ids: bool = False
    """Restart position ids after every EOD."""

    reset_attention_mask: bool = False
    """Tokens after an EOD cannot attend to tokens up to it."""

    eod_mask_loss: bool = False
    """Zero the loss where the input token is EOD."""

    create_attention_mask: bool = True
    """Return the [1, S, S] boolean mask (True = masked out) with each sample."""

    drop_last_partial_validation_sequence: bool = True
    """Drop the last, partial validation sample instead of padding it."""

    add_extra_token_to_sequence: bool = True
    """Read S+1 tokens per sample so tokens and labels both have S entries."""
