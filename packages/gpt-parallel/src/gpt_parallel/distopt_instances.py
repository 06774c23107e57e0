"""Which ranks form each distributed-optimizer instance (``--num-distributed-optimizer-instances``).

Pure arithmetic, like ``rank_layout``. With N instances, each data-parallel x context-parallel
group of ``D`` ranks (in the order the layout lists them) is cut into N runs of ``D/N`` adjacent
ranks. Why: the distributed optimizer then shards its state over ``D/N`` ranks only (the
"intra" group, which with the default rank order stays inside a node or a rail), and the shards
are kept equal by an all-reduce across the N instances (the "inter" group: the ranks holding
the same shard position in each run), so the large reduce-scatter and all-gather never cross
instances. The original's rules (``parallel_state.initialize_model_parallel``):

- ``intra-dp-cp``: ``dp_cp_ranks[i*D/N : (i+1)*D/N]`` for instance ``i``;
- ``inter-dp-cp``: ``dp_cp_ranks[j::D/N]`` for shard position ``j``. The original builds it
  from the expert data-parallel group (the second level of its hierarchical groups) and uses it
  for dense and expert parameters alike; a test checks the two rules give the same groups in
  the default rank order. With ``--use-tp-pp-dp-mapping`` and context parallelism the
  original's rule would pair ranks of different pipeline stages (the expert grid folds cp into
  dp, after pp), so the rule above, which always pairs equal shards, is the one kept;
- ``intra-dist-opt``: every rank of one instance (all model-parallel ranks of its data-parallel
  ranks), consecutive expert model-parallel groups ``tp-ep-pp`` taken ``E/N`` at a time (``E``
  the expert data-parallel size): where gradient norms and overflow flags are summed, since
  every gradient element lives on exactly one rank of an instance.

With one instance all three are empty: the data-parallel group and the world already play
those parts.
"""

from __future__ import annotations

from collections.abc import Sequence

INSTANCE_GROUPS = ("intra-dp-cp", "inter-dp-cp", "intra-dist-opt")
FLAG = "--num-distributed-optimizer-instances"


def check_num_instances(num_instances: int, dp_cp_size: int, expert_dp_size: int) -> None:
    """One-line errors for an instance count that does not split the data-parallel ranks."""
    if not isinstance(num_instances, int) or num_instances < 1:
        raise ValueError(f"{FLAG} must be a positive integer, got {num_instances!r}")
    if dp_cp_size % num_instances:
        raise ValueError(
            f"{FLAG} ({num_instances}) must divide the data-parallel x context-parallel size "
            f"({dp_cp_size})"
        )
    if expert_dp_size % num_instances:
        raise ValueError(
            f"{FLAG} ({num_instances}) must divide the expert data-parallel size ({expert_dp_size})"
        )


def instance_rank_lists(
    dp_cp_groups: Sequence[Sequence[int]],
    expert_model_parallel_groups: Sequence[Sequence[int]],
    num_instances: int,
) -> dict[str, list[list[int]]]:
    """The ``intra-dp-cp``, ``inter-dp-cp`` and ``intra-dist-opt`` groups (see the module doc).

    ``expert_model_parallel_groups`` are the expert grid's ``tp-ep-pp`` groups in layout order.
    """
    out: dict[str, list[list[int]]] = {name: [] for name in INSTANCE_GROUPS}
    if num_instances == 1:
        return out
    for ranks in dp_cp_groups:
        per = len(ranks) // num_instances
        out["intra-dp-cp"] += [list(ranks[i * per : (i + 1) * per]) for i in range(num_instances)]
        out["inter-dp-cp"] += [list(ranks[j::per]) for j in range(per)]
    # One tp-ep-pp group per expert data-parallel rank, so E of them in all.
    per_instance = len(expert_model_parallel_groups) // num_instances
    current: list[int] = []
    for index, ranks in enumerate(expert_model_parallel_groups, start=1):
        current += list(ranks)
        if index % per_instance == 0:
            out["intra-dist-opt"].append(current)
            current = []
    return out
