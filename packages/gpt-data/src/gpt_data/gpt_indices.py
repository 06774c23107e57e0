"""The three GPTDataset indices (document, sample, shuffle), computed as the original does.

The sample index is the original's C++ `build_sample_idx` rewritten as a vectorised search:
sample j (j >= 1) starts at flat token position j*S of the epoch-concatenated document stream,
so its row is the document holding the end of sample j-1 (position j*S + X, exclusive) and the
offset of j*S inside it. Consecutive samples therefore share X (= 1) token: the last input
token of one sample is the first of the next. Work and memory are bounded by processing the
document index in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEPARATE_LAST_EPOCH_THRESHOLD = 0.80
"""The last epoch is shuffled on its own when it supplies fewer than this share of an epoch."""

_INT32_MAX = np.iinfo(np.int32).max
_CHUNK = 1 << 23


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs a request needs and whether the last one is shuffled separately."""

    num_epochs: int
    separate_final_epoch: bool
    num_samples_sans_final_epoch: int | None


def num_epochs_for(
    tokens_per_epoch: int, num_samples: int | None, sequence_length: int, extra_token: int
) -> int:
    """The smallest E >= 1 with E * tokens_per_epoch >= num_samples * S + X (1 when n is None)."""
    if num_samples is None:
        return 1
    if tokens_per_epoch <= 0:
        raise ValueError("the dataset split has no tokens, so no sample can be drawn from it")
    needed = num_samples * sequence_length + extra_token
    return max(1, -(-needed // tokens_per_epoch))


def plan_epochs(
    tokens_per_epoch: int, num_samples: int | None, sequence_length: int, extra_token: int
) -> EpochPlan:
    """Epoch count and the separate-last-epoch decision of the original."""
    num_epochs = num_epochs_for(tokens_per_epoch, num_samples, sequence_length, extra_token)
    if num_epochs == 1:
        return EpochPlan(1, False, None)
    assert num_samples is not None
    sans_final = ((num_epochs - 1) * tokens_per_epoch - extra_token) // sequence_length
    from_final = num_samples - sans_final
    per_epoch = (tokens_per_epoch - extra_token) // sequence_length
    if not 0 <= from_final <= per_epoch + 1:
        raise ValueError(
            f"inconsistent epoch plan: {from_final} samples from the final epoch, {per_epoch} per epoch"
        )
    separate = from_final < int(SEPARATE_LAST_EPOCH_THRESHOLD * per_epoch)
    return EpochPlan(num_epochs, separate, sans_final)


def build_document_index(
    documents: np.ndarray,
    num_epochs: int,
    random_state: np.random.RandomState,
    separate_final_epoch: bool,
) -> np.ndarray:
    """`documents` tiled per epoch and shuffled (int32); a separated last epoch is shuffled alone."""
    if not separate_final_epoch or num_epochs == 1:
        index = np.tile(np.asarray(documents, dtype=np.int32), num_epochs)
        random_state.shuffle(index)
        return index
    first = build_document_index(documents, num_epochs - 1, random_state, False)
    last = build_document_index(documents, 1, random_state, False)
    return np.concatenate((first, last))


def sample_index_dtype(document_index_size: int, sequence_lengths: np.ndarray) -> np.dtype:
    """int32 when every document position and length fits, else int64 (as the original picks)."""
    largest = max(document_index_size, int(sequence_lengths.max()) if sequence_lengths.size else 0)
    return np.dtype(np.int32 if largest <= _INT32_MAX else np.int64)


def count_samples(
    total_tokens: int, sequence_length: int, extra_token: int, drop_last: bool
) -> int:
    """Samples in `total_tokens`: floor, or the original's float32 ceil when keeping the last partial."""
    if drop_last:
        return (total_tokens - extra_token) // sequence_length
    quotient = np.float32(np.float32(total_tokens - extra_token) / np.float32(sequence_length))
    return int(np.ceil(quotient))


def build_sample_index(
    sequence_lengths: np.ndarray,
    document_index: np.ndarray,
    sequence_length: int,
    num_epochs: int,
    tokens_per_epoch: int,
    drop_last_partial_sequence: bool = True,
    add_extra_token_to_sequence: bool = True,
) -> np.ndarray:
    """The [num_samples + 1, 2] array of (position in document_index, token offset) per sample start."""
    extra = int(add_extra_token_to_sequence)
    step = int(sequence_length)
    total_tokens = num_epochs * tokens_per_epoch
    num_samples = count_samples(total_tokens, step, extra, drop_last_partial_sequence)
    dtype = sample_index_dtype(len(document_index), sequence_lengths)
    out = np.zeros((num_samples + 1, 2), dtype=dtype)
    if num_samples <= 0:
        return out
    lengths = np.ascontiguousarray(sequence_lengths)
    # Rows j = 1..num_samples: the end of sample j-1 lies at flat position j*S + X (exclusive).
    j = 1  # next row to fill
    base = 0  # flat position where the current chunk of documents begins
    num_docs = len(document_index)
    for start in range(0, num_docs, _CHUNK):
        stop = min(start + _CHUNK, num_docs)
        ends = np.cumsum(lengths[document_index[start:stop]], dtype=np.int64)
        ends += base
        chunk_end = int(ends[-1])
        # Rows whose end position lies in (base, chunk_end] belong to this chunk.
        last_row = min(num_samples, (chunk_end - extra) // step)
        if last_row >= j:
            rows = np.arange(j, last_row + 1, dtype=np.int64)
            positions = rows * step + extra
            local = np.searchsorted(ends, positions, side="left")
            starts = np.where(local > 0, ends[local - 1], base)
            out[j : last_row + 1, 0] = local + start
            out[j : last_row + 1, 1] = positions - starts - extra
            j = last_row + 1
        base = chunk_end
    if j <= num_samples:
        # Only a kept partial last sample can run past the data: it ends inside the last document.
        last = num_docs - 1
        out[j:, 0] = last
        out[j:, 1] = int(lengths[document_index[last]]) - extra
    return out


def build_shuffle_index(
    num_samples: int, total_size: int, random_state: np.random.RandomState
) -> np.ndarray:
    """A permutation of [0, num_samples), then one of [num_samples, total_size) when larger."""
    dtype = np.uint32 if total_size < np.iinfo(np.uint32).max - 1 else np.int64
    first = np.arange(0, num_samples, dtype=dtype)
    random_state.shuffle(first)
    if num_samples == total_size:
        return first
    last = np.arange(num_samples, total_size, dtype=dtype)
    random_state.shuffle(last)
    return np.concatenate((first, last))


def build_gpt_indices(
    sequence_lengths: np.ndarray,
    documents: np.ndarray,
    num_samples: int | None,
    sequence_length: int,
    random_seed: int,
    drop_last_partial_sequence: bool = True,
    add_extra_token_to_sequence: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(document_index, sample_index, shuffle_index) for `documents` of a dataset with these lengths."""
    extra = int(add_extra_token_to_sequence)
    documents = np.asarray(documents)
    tokens_per_epoch = int(np.sum(sequence_lengths[documents], dtype=np.int64))
    if tokens_per_epoch == 0:
        raise ValueError(f"the split has no tokens ({documents.size} documents); check --split")
    plan = plan_epochs(tokens_per_epoch, num_samples, sequence_length, extra)
    random_state = np.random.RandomState(random_seed)
    document_index = build_document_index(
        documents, plan.num_epochs, random_state, plan.separate_final_epoch
    )
    sample_index = build_sample_index(
        sequence_lengths,
        document_index,
        sequence_length,
        plan.num_epochs,
        tokens_per_epoch,
        drop_last_partial_sequence,
        add_extra_token_to_sequence,
    )
    total = sample_index.shape[0] - 1
    first = plan.num_samples_sans_final_epoch if plan.separate_final_epoch else total
    shuffle_index = build_shuffle_index(first, total, random_state)
    return document_index, sample_index, shuffle_index
