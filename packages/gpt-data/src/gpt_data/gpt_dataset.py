"""GPTDataset: fixed-length samples cut from a shuffled stream of an indexed dataset's sequences."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Protocol

import numpy as np
import torch

from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.gpt_indices import build_gpt_indices
from gpt_data.index_cache import IndexCache, IndexCacheError, dataset_identifiers, describe
from gpt_data.indexed_dataset import IndexedDataset
from gpt_data.masks import get_ltor_masks_and_position_ids
from gpt_data.splits import Split

logger = logging.getLogger(__name__)

_INDEX_NAMES = ("document_index", "sample_index", "shuffle_index")


class LowLevelDataset(Protocol):
    """What GPTDataset reads: per-sequence lengths and token slices."""

    sequence_lengths: np.ndarray

    def get(self, idx: int, offset: int = 0, length: int | None = None) -> np.ndarray: ...


class GPTDataset(torch.utils.data.Dataset):
    """Samples of `sequence_length` (+1) tokens over `indexed_indices`, for `num_samples` or one epoch.

    Index arrays come from the cache when present; otherwise they are built (only where
    `build_on_this_rank`; elsewhere a missing cache is an error, because rank 0 builds it and the
    others wait at a barrier before reading it).
    """

    def __init__(
        self,
        indexed_dataset: LowLevelDataset,
        dataset_path: str | None,
        indexed_indices: np.ndarray,
        num_samples: int | None,
        index_split: Split,
        config: GPTDatasetConfig,
        *,
        build_on_this_rank: bool = True,
    ) -> None:
        self.dataset = indexed_dataset
        self.dataset_path = dataset_path
        self.indices = indexed_indices
        self.num_samples = num_samples
        self.index_split = index_split
        self.config = config
        self.unique_identifiers = dataset_identifiers(self)
        self.unique_description, self.unique_description_hash = describe(self.unique_identifiers)
        self._pad_token_id = config.pad_id
        self._cacheable_masks = not (
            config.reset_position_ids or config.reset_attention_mask or config.eod_mask_loss
        )
        self._cached_masks: tuple[Any, torch.Tensor, torch.Tensor] | None = None
        self.built_anew_on_cache_miss = False
        self.document_index, self.sample_index, self.shuffle_index = self._indices(
            build_on_this_rank
        )

    # Construction helpers mirrored by every mid-level dataset class.
    @staticmethod
    def numel_low_level_dataset(low_level_dataset: LowLevelDataset) -> int:
        """GPT splits by sequence, not by `.idx` document."""
        return int(low_level_dataset.sequence_lengths.shape[0])

    @staticmethod
    def build_low_level_dataset(dataset_path: str, config: GPTDatasetConfig) -> IndexedDataset:
        return IndexedDataset(dataset_path, multimodal=False, mmap=config.mmap_bin_files)

    def _cache_directory(self) -> str | None:
        if self.config.path_to_cache:
            return self.config.path_to_cache
        prefix = getattr(self.dataset, "path_prefix", None)
        if self.config.mock or prefix is None:
            return None
        return os.path.join(prefix, "cache", f"{type(self).__name__}_indices")

    def _indices(self, build_on_this_rank: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        directory = self._cache_directory()
        cache = None
        if directory:
            stem = f"{self.unique_description_hash}-{type(self).__name__}-{self.index_split.name}"
            cache = IndexCache(directory, stem, _INDEX_NAMES)
            if cache.exists():
                logger.info(
                    "Load the %s %s indices from %s",
                    type(self).__name__,
                    self.index_split.name,
                    directory,
                )
                arrays = cache.load()
                return tuple(arrays[name] for name in _INDEX_NAMES)  # type: ignore[return-value]
            if not build_on_this_rank:
                raise IndexCacheError(
                    f"index cache {cache.description_path} is missing on this rank; the building rank "
                    "must write it first (is the cache directory shared between ranks?)"
                )
        started = time.time()
        drop_last = (
            self.config.drop_last_partial_validation_sequence
            if self.index_split == Split.valid
            else True
        )
        try:
            arrays = build_gpt_indices(
                self.dataset.sequence_lengths,
                self.indices,
                self.num_samples,
                self.config.sequence_length,
                self.config.random_seed,
                drop_last_partial_sequence=drop_last,
                add_extra_token_to_sequence=self.config.add_extra_token_to_sequence,
            )
        except ValueError as err:
            raise ValueError(
                f"{self.index_split.name} split of {self.dataset_path}: {err}"
            ) from None
        self.built_anew_on_cache_miss = True
        if cache is not None:
            cache.save(self.unique_description, dict(zip(_INDEX_NAMES, arrays)))
        else:
            logger.warning("Not caching the %s indices: no cache path", type(self).__name__)
        logger.info(
            "Built the %s %s indices in %.3f s: %d samples",
            type(self).__name__,
            self.index_split.name,
            time.time() - started,
            arrays[1].shape[0] - 1,
        )
        return arrays

    def __len__(self) -> int:
        return int(self.sample_index.shape[0]) - 1

    def __getitem__(self, idx: int | None) -> dict[str, torch.Tensor]:
        """One sample; `idx=None` gives a batch-padding sample (sample 0 with zero loss mask)."""
        text, _ = self._query_document_sample_shuffle_indices(0 if idx is None else idx)
        text = torch.from_numpy(text)
        if self.config.add_extra_token_to_sequence:
            tokens = text[:-1].contiguous()
            labels = text[1:].contiguous()
        else:
            tokens = text
            labels = torch.roll(text, shifts=-1, dims=0)
            labels[-1] = self._pad_token_id

        if self._cacheable_masks and self._cached_masks is not None:
            attention_mask, loss_mask, position_ids = self._cached_masks
        else:
            attention_mask, loss_mask, position_ids = get_ltor_masks_and_position_ids(
                tokens,
                self.config.eod_id,
                self.config.reset_position_ids,
                self.config.reset_attention_mask,
                self.config.eod_mask_loss,
                self.config.create_attention_mask,
            )
            if self._cacheable_masks:
                self._cached_masks = (attention_mask, loss_mask, position_ids)
        # Later edits must not leak into the cached masks.
        loss_mask = loss_mask.clone()
        position_ids = position_ids.clone()

        pad = labels == self._pad_token_id
        loss_mask[pad] = 0.0
        tokens[tokens == self._pad_token_id] = 0
        labels[pad] = 0
        if idx is None:
            loss_mask.zero_()

        sample = {"tokens": tokens, "labels": labels}
        if self.config.create_attention_mask:
            sample["attention_mask"] = attention_mask  # shared between samples; read-only
        sample["loss_mask"] = loss_mask
        sample["position_ids"] = position_ids
        return sample

    def _query_document_sample_shuffle_indices(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(S + X tokens as int64, ids of the documents they come from) for sample `idx`."""
        if not -len(self) <= idx < len(self):
            raise IndexError(f"sample {idx} out of range for a dataset of {len(self)} samples")
        j = int(self.shuffle_index[idx])
        doc_begin, offset_begin = (int(v) for v in self.sample_index[j])
        doc_end, offset_end = (int(v) for v in self.sample_index[j + 1])
        extra = int(self.config.add_extra_token_to_sequence)
        document_ids = [int(d) for d in self.document_index[doc_begin : doc_end + 1]]
        if doc_begin == doc_end:
            parts = [
                self.dataset.get(document_ids[0], offset_begin, offset_end - offset_begin + extra)
            ]
        else:
            parts = [self.dataset.get(document_ids[0], offset_begin)]
            parts += [self.dataset.get(doc) for doc in document_ids[1:-1]]
            parts.append(self.dataset.get(document_ids[-1], 0, offset_end + extra))
        wanted = self.config.sequence_length + extra
        text = np.concatenate(parts).astype(np.int64, copy=False)
        if text.size < wanted:
            text = np.concatenate((text, np.full(wanted - text.size, self._pad_token_id, np.int64)))
        return text, np.asarray(document_ids, dtype=np.int64)
