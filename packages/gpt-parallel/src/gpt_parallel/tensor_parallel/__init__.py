"""Tensor and sequence parallelism: the region mappings, the vocab-parallel cross-entropy, and
(re-exported from ``gpt_parallel.comm.volume``) the counter of the bytes collectives send.

Every function takes its process group as an argument (``None`` means this rank alone); the
modules hold no groups of their own.
"""

from gpt_parallel.comm.volume import (
    CommRecord,
    CommRecorder,
    count_bytes,
    theoretical_bytes,
)
from gpt_parallel.tensor_parallel.cross_entropy import vocab_parallel_cross_entropy, vocab_range
from gpt_parallel.tensor_parallel.mappings import (
    copy_to_tensor_parallel_region,
    gather_from_sequence_parallel_region,
    gather_from_tensor_parallel_region,
    reduce_from_tensor_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
    scatter_to_sequence_parallel_region,
    scatter_to_tensor_parallel_region,
)

__all__ = [
    "CommRecord",
    "CommRecorder",
    "copy_to_tensor_parallel_region",
    "count_bytes",
    "gather_from_sequence_parallel_region",
    "gather_from_tensor_parallel_region",
    "reduce_from_tensor_parallel_region",
    "reduce_scatter_to_sequence_parallel_region",
    "scatter_to_sequence_parallel_region",
    "scatter_to_tensor_parallel_region",
    "theoretical_bytes",
    "vocab_parallel_cross_entropy",
    "vocab_range",
]
