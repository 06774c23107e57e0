"""SFTDataset (`--sft`): chat conversations from JSONL, one padded sample per conversation.

As the original (core_v0.14.0) does it, sample i is line `indices[i % len(indices)]` of the split,
in file order (no shuffle): the conversation is tokenized by the tokenizer's prompt format
(`tokenize_conversation`, whose targets mark prompt tokens with -100), cut to fit the sequence,
closed with EOD when the tokenizer forces one (`force_eod`), then padded with the pad id. Tokens
and labels are that sequence shifted by one; the loss mask is 0 on padding and on prompt labels,
so only the assistant's tokens (and the forced EOD) are learned. Labels keep the -100 entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from gpt_data.dataset_config import GPTDatasetConfig
from gpt_data.index_cache import dataset_identifiers, describe
from gpt_data.splits import Split

IGNORE_INDEX = -100
"""Target id of prompt tokens (torch's cross-entropy ignore_index; the tokenizer writes it)."""

Conversation = list[Mapping[str, Any]]


class ConversationTokenizer(Protocol):
    """What SFTDataset needs of a tokenizer (gpt_tokenizers' SFTTokenizer has it)."""

    @property
    def eod(self) -> int: ...

    @property
    def pad(self) -> int: ...

    def tokenize_conversation(
        self,
        conversation: Sequence[Mapping[str, Any]],
        return_target: bool,
        add_generation_prompt: bool,
    ) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class SFTDatasetConfig(GPTDatasetConfig):
    """GPTDatasetConfig plus the tokenizer object, which SFT samples are made with."""

    tokenizer: ConversationTokenizer
    """Tokenizes conversations; its eod, pad and optional `force_eod` shape every sample."""


class SFTLowLevelDataset:
    """The conversations of a JSONL file: one `{"messages": [{"role", "content"}, ...]}` per line.

    Lines are indexed by byte offset and parsed when read, so a large file stays on disk; blank
    lines are skipped. A line can hold several conversations, each starting at a system message.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise ValueError(f"--data-path {path}: no such JSONL file of conversations (--sft)")
        offsets, line_numbers = [], []
        with open(path, "rb") as stream:
            position = 0
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    offsets.append(position)
                    line_numbers.append(number)
                position += len(line)
        self.path = path
        self.path_prefix = None  # nothing to cache next to it
        self._offsets = np.array(offsets + [position], dtype=np.int64)
        self._line_numbers = np.array(line_numbers, dtype=np.int64)
        self._stream = None
        self._stream_pid = -1

    def __len__(self) -> int:
        return int(self._line_numbers.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_stream"], state["_stream_pid"] = None, -1  # each worker opens its own
        return state

    def __getitem__(self, idx: int) -> Conversation:
        if self._stream is None or self._stream_pid != os.getpid():
            self._stream = open(self.path, "rb")  # noqa: SIM115 - kept open for later reads
            self._stream_pid = os.getpid()
        start, end = int(self._offsets[idx]), int(self._offsets[idx + 1])
        self._stream.seek(start)
        text = self._stream.read(end - start)
        where = f"{self.path}:{int(self._line_numbers[idx])}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not JSON ({err.msg})") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            raise ValueError(f'{where}: expected an object with a non-empty "messages" list')
        if not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
            raise ValueError(f'{where}: every message needs a "role" and a "content"')
        return messages


class SFTDataset(torch.utils.data.Dataset):
    """`num_samples` padded conversations of `sequence_length` tokens (see the module docstring).

    Built by BlendedMegatronDatasetBuilder like GPTDataset: a split is a range of the file's
    lines; nothing is cached, and `build_on_this_rank` changes nothing.
    """

    def __init__(
        self,
        indexed_dataset: SFTLowLevelDataset,
        dataset_path: str | None,
        indexed_indices: np.ndarray,
        num_samples: int | None,
        index_split: Split,
        config: SFTDatasetConfig,
        *,
        build_on_this_rank: bool = True,
    ) -> None:
        if not isinstance(config, SFTDatasetConfig):
            raise TypeError("SFTDataset needs an SFTDatasetConfig (it carries the tokenizer)")
        if config.reset_position_ids or config.reset_attention_mask:
            raise ValueError(
                "--sft supports neither --reset-position-ids nor --reset-attention-mask"
            )
        tokenizer = config.tokenizer
        if _optional_id(tokenizer, "pad") is None:
            raise ValueError(
                "--sft needs a tokenizer with a pad id (use --tokenizer-type SFTTokenizer)"
            )
        self._force_eod = bool(getattr(tokenizer, "force_eod", False))
        if self._force_eod and _optional_id(tokenizer, "eod") is None:
            raise ValueError("--sft: the tokenizer forces an EOD but has no eod id")
        self.dataset = indexed_dataset
        self.dataset_path = dataset_path
        self.indices = indexed_indices
        self.num_samples = len(indexed_indices) if num_samples is None else num_samples
        if self.num_samples > 0 and len(indexed_indices) == 0:
            raise ValueError(
                f"--sft: the {index_split.name} split of {dataset_path} holds no conversations "
                f"but {self.num_samples} samples are requested"
            )
        self.index_split = index_split
        self.config = config
        self.unique_identifiers = dataset_identifiers(self)  # names a blend's cache entry
        self.unique_description, self.unique_description_hash = describe(self.unique_identifiers)
        self._causal_mask: torch.Tensor | None = None

    @staticmethod
    def numel_low_level_dataset(low_level_dataset: SFTLowLevelDataset) -> int:
        """SFT splits by conversation line."""
        return len(low_level_dataset)

    @staticmethod
    def build_low_level_dataset(dataset_path: str, config: SFTDatasetConfig) -> SFTLowLevelDataset:
        return SFTLowLevelDataset(dataset_path)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"sample {idx} out of range for an SFT dataset of {len(self)}")
        tokenizer = self.config.tokenizer
        length = self.config.sequence_length
        conversation = self.dataset[int(self.indices[idx % len(self.indices)])]
        tokens, targets = tokenizer.tokenize_conversation(
            conversation, return_target=True, add_generation_prompt=False
        )
        tokens = np.asarray(tokens, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.int64)
        eod_count = int(self._force_eod)
        body = length - eod_count  # room left after the forced EOD
        tokens, targets = tokens[:body], targets[:body]
        # One token past the sequence, so that shifting leaves `length` tokens and labels.
        filler = np.array(
            [tokenizer.eod] * eod_count + [tokenizer.pad] * (length - len(tokens) - eod_count + 1),
            dtype=np.int64,
        )
        text = torch.from_numpy(np.concatenate((tokens, filler)))
        target = torch.from_numpy(np.concatenate((targets, filler)))
        labels = target[1:].contiguous()
        loss_mask = torch.ones(length, dtype=torch.float32)
        loss_mask[labels == tokenizer.pad] = 0.0
        loss_mask[labels == IGNORE_INDEX] = 0.0
        sample = {"tokens": text[:-1].contiguous(), "labels": labels}
        if self.config.create_attention_mask:
            sample["attention_mask"] = self._causal()
        sample["loss_mask"] = loss_mask
        sample["position_ids"] = torch.arange(length, dtype=torch.long)
        return sample

    def _causal(self) -> torch.Tensor:
        """[1, S, S] bool, True above the diagonal (masked out); shared by all samples, read-only."""
        if self._causal_mask is None:
            length = self.config.sequence_length
            allowed = torch.tril(torch.ones(length, length, dtype=torch.bool))
            self._causal_mask = (~allowed).unsqueeze(0)
        return self._causal_mask


def _optional_id(tokenizer: Any, name: str) -> int | None:
    """The tokenizer's id `name`, or None where it has none (missing, None, or raising)."""
    try:
        value = getattr(tokenizer, name)
    except (AttributeError, NotImplementedError):
        return None
    return None if value is None else int(value)
