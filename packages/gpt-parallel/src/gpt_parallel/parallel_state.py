"""One object that knows this rank's place in every parallel group and owns the groups.

Built once from the parallel sizes, it checks that they multiply to the world size, computes
ranks in the original's order (tp fastest, then cp, ep, dp, pp; or tp, cp, ep, pp, dp with
``--use-tp-pp-dp-mapping``) and creates every named process group. Code that communicates takes
the group it needs as an argument; nothing here is global.

Group names are the original's rank-generator tokens:

- dense grid: ``tp``, ``cp``, ``dp``, ``pp``, ``dp-cp``, ``tp-cp``, ``tp-dp``, ``tp-dp-cp``,
  ``tp-pp`` (the model-parallel group), ``embd`` (first and last pipeline stage, for tied
  embeddings) and ``pos-embd`` (first stage);
- expert grid (tp -> expert-tp, dp -> expert-dp, cp folded into expert-dp): ``ep``, ``etp``,
  ``edp``, ``etp-ep`` and ``etp-ep-pp`` (the expert model-parallel group);
- hierarchical context parallelism: ``hcp-a2a`` and ``hcp-p2p`` (empty without
  ``--hierarchical-context-parallel-sizes``);
- distributed-optimizer instances: ``intra-dp-cp``, ``inter-dp-cp`` and ``intra-dist-opt``
  (empty unless ``--num-distributed-optimizer-instances`` > 1; see ``distopt_instances``).

Without torch.distributed initialised and with one rank, every group is ``None`` (see
``gpt_parallel.collectives``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from gpt_parallel.context_parallel.options import hierarchical_cp_rank_lists
from gpt_parallel.distopt_instances import (
    INSTANCE_GROUPS,
    check_num_instances,
    instance_rank_lists,
)
from gpt_parallel.layout_config import DistributedConfig, ExpertParallelConfig
from gpt_parallel.rank_layout import RankGrid, order_for

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

DENSE_GROUPS = ("tp", "cp", "dp", "pp", "dp-cp", "tp-cp", "tp-dp", "tp-dp-cp", "tp-pp")
EMBEDDING_GROUPS = ("embd", "pos-embd")
EXPERT_GROUPS = {"ep": "ep", "etp": "tp", "edp": "dp", "etp-ep": "tp-ep", "etp-ep-pp": "tp-ep-pp"}
HIERARCHICAL_CP_GROUPS = ("hcp-a2a", "hcp-p2p")
GROUP_NAMES = (
    DENSE_GROUPS
    + EMBEDDING_GROUPS
    + tuple(EXPERT_GROUPS)
    + HIERARCHICAL_CP_GROUPS
    + INSTANCE_GROUPS
)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


def build_grids(
    distributed: DistributedConfig, expert_config: ExpertParallelConfig, world_size: int
) -> tuple[RankGrid, RankGrid]:
    """The dense and expert rank grids for ``world_size`` ranks, after checking the sizes.

    The sizes are read from the flag classes themselves (no copy of them by name), so a
    renamed flag fails here instead of falling back to a default.
    """
    tp = distributed.tensor_model_parallel_size
    pp = distributed.pipeline_model_parallel_size
    cp = distributed.context_parallel_size
    ep = expert_config.expert_model_parallel_size
    etp = expert_config.expert_tensor_parallel_size
    etp = etp if etp is not None else tp
    for name, value in (
        ("tensor_model_parallel_size", tp),
        ("pipeline_model_parallel_size", pp),
        ("context_parallel_size", cp),
        ("expert_model_parallel_size", ep),
        ("expert_tensor_parallel_size", etp),
    ):
        _check_positive(name, value)
    model_size = tp * pp * cp
    if world_size % model_size:
        raise ValueError(
            f"world size {world_size} is not divisible by tensor ({tp}) x pipeline ({pp}) "
            f"x context ({cp}) parallel sizes = {model_size}"
        )
    expert_model_size = etp * ep * pp
    if world_size % expert_model_size:
        raise ValueError(
            f"world size {world_size} is not divisible by expert tensor ({etp}) x expert model "
            f"({ep}) x pipeline ({pp}) parallel sizes = {expert_model_size}"
        )
    check_num_instances(
        distributed.num_distributed_optimizer_instances,
        world_size // (tp * pp),
        world_size // expert_model_size,
    )
    order = order_for(distributed.use_tp_pp_dp_mapping)
    dense = RankGrid({"tp": tp, "cp": cp, "ep": 1, "dp": world_size // model_size, "pp": pp}, order)
    expert = RankGrid(
        {"tp": etp, "cp": 1, "ep": ep, "dp": world_size // expert_model_size, "pp": pp}, order
    )
    return dense, expert


def all_group_ranks(
    dense: RankGrid,
    expert: RankGrid,
    hierarchical_cp_sizes: list[int] | None = None,
    num_distributed_optimizer_instances: int = 1,
) -> dict[str, list[list[int]]]:
    """Every group of every name, in the order the groups are created on all ranks.

    With ``--hierarchical-context-parallel-sizes`` (``a2a+p2p``) each CP group is also cut into
    inner all-to-all groups (``hcp-a2a``, adjacent CP ranks) and outer ring groups (``hcp-p2p``).
    With several distributed-optimizer instances each DP x CP group is cut into instances.
    """
    out: dict[str, list[list[int]]] = {name: dense.groups(name) for name in DENSE_GROUPS}
    pipelines = dense.groups("pp")
    out["embd"] = [[r[0], r[-1]] if len(r) > 1 else list(r) for r in pipelines]
    out["pos-embd"] = [[r[0]] for r in pipelines]
    for name, token in EXPERT_GROUPS.items():
        out[name] = expert.groups(token)
    out["hcp-a2a"], out["hcp-p2p"] = [], []
    if hierarchical_cp_sizes and dense.sizes["cp"] > 1:
        for cp_ranks in out["cp"]:
            inner, outer = hierarchical_cp_rank_lists(list(cp_ranks), hierarchical_cp_sizes)
            out["hcp-a2a"] += inner
            out["hcp-p2p"] += outer
    out.update(
        instance_rank_lists(
            out["dp-cp"], expert.groups("tp-ep-pp"), num_distributed_optimizer_instances
        )
    )
    return out


class ParallelState:
    """This rank's coordinates, group memberships and process groups.

    Use ``ParallelState.build(distributed, expert)`` in a program (it reads the world from
    torch.distributed, or assumes one rank when that is not initialised) and
    ``ParallelState.plan(distributed, expert, world_size, rank)`` to compute a layout without
    creating groups.
    """

    def __init__(
        self,
        distributed: DistributedConfig,
        expert: ExpertParallelConfig,
        world_size: int,
        rank: int,
        groups: dict[str, dist.ProcessGroup | None] | None,
    ) -> None:
        self.distributed = distributed
        self.expert = expert
        self.world_size = world_size
        self.rank = rank
        self.dense_grid, self.expert_grid = build_grids(distributed, expert, world_size)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} ranks")
        self._group_ranks: dict[str, list[int]] = {}
        hierarchical = distributed.hierarchical_context_parallel_sizes
        instances = distributed.num_distributed_optimizer_instances
        for name, groups_ in all_group_ranks(
            self.dense_grid, self.expert_grid, hierarchical, instances
        ).items():
            self._group_ranks[name] = next((r for r in groups_ if rank in r), [])
        self._groups = groups
        self._mesh = None
        dense = self.dense_grid.coordinates(rank)
        expert = self.expert_grid.coordinates(rank)
        self.tp_rank: int = dense["tp"]
        self.cp_rank: int = dense["cp"]
        self.dp_rank: int = dense["dp"]
        self.pp_rank: int = dense["pp"]
        self.etp_rank: int = expert["tp"]
        self.ep_rank: int = expert["ep"]
        self.edp_rank: int = expert["dp"]

    # --- construction -------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        distributed: DistributedConfig | None = None,
        expert: ExpertParallelConfig | None = None,
        *,
        timeout: timedelta | None = None,
    ) -> ParallelState:
        """Create the state and its process groups (every rank must call this, in step)."""
        distributed = distributed or DistributedConfig()
        expert_config = expert or ExpertParallelConfig()
        if not (dist.is_available() and dist.is_initialized()):
            return cls(distributed, expert_config, 1, 0, {name: None for name in GROUP_NAMES})
        world_size, rank = dist.get_world_size(), dist.get_rank()
        dense, expert_grid = build_grids(distributed, expert_config, world_size)
        cache: dict[tuple[int, ...], dist.ProcessGroup | None] = {}
        mine: dict[str, dist.ProcessGroup | None] = {}
        hierarchical = distributed.hierarchical_context_parallel_sizes
        instances = distributed.num_distributed_optimizer_instances
        for name, groups_ in all_group_ranks(dense, expert_grid, hierarchical, instances).items():
            for ranks in groups_:
                key = tuple(ranks)
                if key not in cache:
                    group = dist.new_group(list(ranks), timeout=timeout)
                    cache[key] = group if rank in ranks else None
                if rank in ranks:
                    mine[name] = cache[key]
        return cls(distributed, expert_config, world_size, rank, mine)

    @classmethod
    def plan(
        cls,
        distributed: DistributedConfig,
        expert: ExpertParallelConfig | None = None,
        *,
        world_size: int,
        rank: int,
    ) -> ParallelState:
        """The layout of ``rank`` in a world of ``world_size``, without process groups."""
        return cls(distributed, expert or ExpertParallelConfig(), world_size, rank, None)

    # --- sizes --------------------------------------------------------------------------

    @property
    def tp_size(self) -> int:
        return self.dense_grid.sizes["tp"]

    @property
    def pp_size(self) -> int:
        return self.dense_grid.sizes["pp"]

    @property
    def cp_size(self) -> int:
        return self.dense_grid.sizes["cp"]

    @property
    def dp_size(self) -> int:
        return self.dense_grid.sizes["dp"]

    @property
    def ep_size(self) -> int:
        return self.expert_grid.sizes["ep"]

    @property
    def etp_size(self) -> int:
        return self.expert_grid.sizes["tp"]

    @property
    def edp_size(self) -> int:
        return self.expert_grid.sizes["dp"]

    # --- groups -------------------------------------------------------------------------

    def group_ranks(self, name: str) -> list[int]:
        """Global ranks of this rank's group ``name`` (empty for embd groups it is not in)."""
        if name not in self._group_ranks:
            raise KeyError(f"unknown process group {name!r}; known: {', '.join(GROUP_NAMES)}")
        return list(self._group_ranks[name])

    def group(self, name: str) -> dist.ProcessGroup | None:
        """This rank's process group ``name`` (``None``: a one-rank world, or not a member)."""
        self.group_ranks(name)  # validates the name
        if self._groups is None:
            if self.world_size > 1:
                raise RuntimeError(
                    "this ParallelState was planned without process groups; use ParallelState.build"
                )
            return None
        return self._groups.get(name)

    @property
    def mesh(self) -> DeviceMesh | None:
        """A DeviceMesh over the dense dims (slowest first, e.g. pp, dp, cp, tp) on the groups.

        ``None`` without torch.distributed. Built on first use from the existing groups.
        """
        if self._mesh is None and self._groups is not None and self._groups["tp"] is not None:
            from torch.distributed.device_mesh import DeviceMesh

            dims = [t for t in reversed(self.dense_grid.tokens) if t != "ep"]
            shape = [self.dense_grid.sizes[t] for t in dims]
            mesh = torch.arange(self.world_size, dtype=torch.int).reshape(shape)
            self._mesh = DeviceMesh.from_group(
                [self._groups[t] for t in dims],
                "cuda" if dist.get_backend(self._groups["tp"]) == "nccl" else "cpu",
                mesh,
                mesh_dim_names=tuple(dims),
            )
        return self._mesh

    # --- pipeline position --------------------------------------------------------------

    @property
    def is_pipeline_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_pipeline_last_stage(self) -> bool:
        return self.pp_rank == self.pp_size - 1

    def __repr__(self) -> str:
        return (
            f"ParallelState(rank={self.rank}/{self.world_size}, tp={self.tp_rank}/{self.tp_size}, "
            f"cp={self.cp_rank}/{self.cp_size}, dp={self.dp_rank}/{self.dp_size}, "
            f"pp={self.pp_rank}/{self.pp_size}, ep={self.ep_rank}/{self.ep_size}, "
            f"etp={self.etp_rank}/{self.etp_size})"
        )
