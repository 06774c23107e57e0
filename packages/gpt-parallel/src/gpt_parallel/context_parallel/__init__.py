"""Context parallelism: the sequence split over the CP group, and exact causal attention over it
(ring ``p2p``, ``all_gather``, all-to-all ``a2a``, hierarchical ``a2a+p2p``), as in the original
(Megatron core with Transformer Engine). Tensors are ``[batch, heads, seq, head_dim]``."""

from gpt_parallel.context_parallel.attention import (
    ContextParallelGroups,
    context_parallel_attention,
)
from gpt_parallel.context_parallel.block_math import causal_attention
from gpt_parallel.context_parallel.chunking import (
    gather_from_context_parallel,
    load_balanced_chunk_ids,
    merge_context_parallel_shards,
    split_batch_for_context_parallel,
    split_for_context_parallel,
)
from gpt_parallel.context_parallel.options import (
    CP_COMM_TYPES,
    check_context_parallel_attention,
    hierarchical_cp_rank_lists,
    normalize_cp_comm_type,
)

__all__ = [
    "CP_COMM_TYPES",
    "ContextParallelGroups",
    "causal_attention",
    "check_context_parallel_attention",
    "context_parallel_attention",
    "gather_from_context_parallel",
    "hierarchical_cp_rank_lists",
    "load_balanced_chunk_ids",
    "merge_context_parallel_shards",
    "normalize_cp_comm_type",
    "split_batch_for_context_parallel",
    "split_for_context_parallel",
]
