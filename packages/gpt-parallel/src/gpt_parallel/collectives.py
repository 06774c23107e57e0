"""Group helpers and whole-tensor collectives over a group that may be ``None`` (this rank alone).

``ParallelState`` hands out ``None`` for every group when torch.distributed is not initialised
(a one-process run), so library code calls these helpers instead of torch.distributed directly
and works unchanged in both cases. The code lives in ``gpt_parallel.comm`` (where every
collective reports its bytes to ``comm.volume``); this module keeps the short import path the
rest of the package uses.
"""

from __future__ import annotations

from gpt_parallel.comm.basic import all_gather_object, all_reduce, all_reduce_
from gpt_parallel.comm.groups import ProcessGroup, group_rank, group_size

__all__ = [
    "ProcessGroup",
    "all_gather_object",
    "all_reduce",
    "all_reduce_",
    "group_rank",
    "group_size",
]
