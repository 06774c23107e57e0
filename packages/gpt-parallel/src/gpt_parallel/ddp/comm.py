"""The data-parallel collectives on flat buffers: ``gpt_parallel.comm.flat``, re-exported under
the name the ``ddp`` modules (and their tests) import."""

from gpt_parallel.comm.flat import (
    Handle,
    all_gather_flat,
    all_reduce_flat,
    reduce_scatter_flat,
    reduce_scatter_via_all_reduce,
    shard_of,
    supports_avg,
)

__all__ = [
    "Handle",
    "all_gather_flat",
    "all_reduce_flat",
    "reduce_scatter_flat",
    "reduce_scatter_via_all_reduce",
    "shard_of",
    "supports_avg",
]
