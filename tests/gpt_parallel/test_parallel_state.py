"""ParallelState: rank layout in the original's order, size checks, and real process groups."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_parallel.collectives import all_reduce_, group_size
from gpt_parallel.config import DistributedConfig, ExpertParallelConfig
from gpt_parallel.parallel_state import GROUP_NAMES, ParallelState
from gpt_parallel.rank_layout import RankGrid, orthogonal_rank_groups


def _sizes(**sizes: int | bool) -> tuple[DistributedConfig, ExpertParallelConfig]:
    """The two flag classes that hold the parallel sizes, from flag dests."""
    expert_names = {"expert_model_parallel_size", "expert_tensor_parallel_size"}
    expert = {k: v for k, v in sizes.items() if k in expert_names}
    dense = {k: v for k, v in sizes.items() if k not in expert_names}
    return DistributedConfig(**dense), ExpertParallelConfig(**expert)


def test_orthogonal_groups_match_the_originals_documented_example():
    # The original's docstring: sizes [tp, dp, pp] = [2, 3, 4], dp groups.
    groups = orthogonal_rank_groups([2, 3, 4], [False, True, False])
    assert groups[0] == [0, 2, 4]
    assert groups[1] == [1, 3, 5]
    assert groups[7] == [19, 21, 23]
    assert len(groups) == 8


def test_default_order_puts_tp_fastest_then_cp_dp_pp():
    sizes = _sizes(
        tensor_model_parallel_size=2, pipeline_model_parallel_size=2, context_parallel_size=2
    )
    for rank in range(16):
        ps = ParallelState.plan(*sizes, world_size=16, rank=rank)
        assert ps.dp_size == 2
        # rank = tp + tp*(cp + cp*(dp + dp*pp))
        assert rank == ps.tp_rank + 2 * (ps.cp_rank + 2 * (ps.dp_rank + 2 * ps.pp_rank))


def test_tp_pp_dp_mapping_puts_pp_before_dp():
    sizes = _sizes(
        tensor_model_parallel_size=2, pipeline_model_parallel_size=2, use_tp_pp_dp_mapping=True
    )
    for rank in range(8):
        ps = ParallelState.plan(*sizes, world_size=8, rank=rank)
        assert rank == ps.tp_rank + 2 * (ps.pp_rank + 2 * ps.dp_rank)
    assert ParallelState.plan(*sizes, world_size=8, rank=0).group_ranks("dp") == [0, 4]
    assert ParallelState.plan(*sizes, world_size=8, rank=0).group_ranks("pp") == [0, 2]


def test_groups_for_tp2_pp2_dp2_on_eight_ranks():
    sizes = _sizes(tensor_model_parallel_size=2, pipeline_model_parallel_size=2)
    ps = ParallelState.plan(*sizes, world_size=8, rank=5)  # tp 1, dp 0, pp 1
    assert (ps.tp_rank, ps.dp_rank, ps.pp_rank) == (1, 0, 1)
    assert ps.group_ranks("tp") == [4, 5]
    assert ps.group_ranks("dp") == [5, 7]
    assert ps.group_ranks("pp") == [1, 5]
    assert ps.group_ranks("tp-pp") == [0, 1, 4, 5]
    assert ps.group_ranks("embd") == [1, 5]
    assert ps.group_ranks("pos-embd") == []
    assert ParallelState.plan(*sizes, world_size=8, rank=1).group_ranks("pos-embd") == [1]
    assert ps.is_pipeline_last_stage and not ps.is_pipeline_first_stage


def test_expert_grid_folds_cp_into_expert_data_parallel():
    sizes = _sizes(
        tensor_model_parallel_size=2, context_parallel_size=2, expert_model_parallel_size=2
    )
    ps = ParallelState.plan(*sizes, world_size=8, rank=0)
    assert (ps.dp_size, ps.etp_size, ps.ep_size, ps.edp_size) == (2, 2, 2, 2)
    assert ps.group_ranks("ep") == [0, 2]
    assert ps.group_ranks("edp") == [0, 4]
    assert ps.group_ranks("etp-ep") == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("sizes", "world", "message"),
    [
        (
            _sizes(tensor_model_parallel_size=3),
            8,
            r"world size 8 is not divisible by tensor \(3\)",
        ),
        (_sizes(expert_model_parallel_size=3), 8, r"expert model \(3\)"),
        (
            _sizes(pipeline_model_parallel_size=0),
            8,
            r"--pipeline-model-parallel-size must be a positive",
        ),
    ],
)
def test_sizes_that_do_not_fit_the_world_fail_with_one_line(sizes, world, message):
    with pytest.raises(ValueError, match=message):
        ParallelState.plan(*sizes, world_size=world, rank=0)


def test_without_distributed_every_group_is_none_and_collectives_are_local():
    ps = ParallelState.build(*_sizes())
    assert (ps.world_size, ps.rank, ps.dp_size) == (1, 0, 1)
    assert all(ps.group(name) is None for name in GROUP_NAMES)
    value = torch.tensor([3.0])
    assert all_reduce_(value, ps.group("dp")).item() == 3.0
    assert group_size(ps.group("tp")) == 1


def test_a_planned_multi_rank_state_refuses_to_hand_out_groups():
    ps = ParallelState.plan(*_sizes(), world_size=2, rank=0)
    with pytest.raises(RuntimeError, match="without process groups"):
        ps.group("dp")


def _layout_and_group_sums() -> dict:
    ps = ParallelState.build(*_sizes(tensor_model_parallel_size=2, pipeline_model_parallel_size=2))
    sums = {}
    for name in ("tp", "dp", "pp", "tp-pp", "dp-cp", "embd", "etp-ep-pp"):
        group = ps.group(name)
        value = torch.tensor([float(dist.get_rank())])
        if group is not None:
            all_reduce_(value, group)
        sums[name] = (ps.group_ranks(name), value.item(), group_size(group))
    mesh = ps.mesh
    return {
        "coords": (ps.tp_rank, ps.cp_rank, ps.dp_rank, ps.pp_rank),
        "sums": sums,
        "mesh": (mesh.mesh_dim_names, mesh.get_group("tp").size(), mesh.get_local_rank("dp")),
    }


def test_process_groups_on_eight_ranks_hold_the_layouts_ranks(run_on_ranks):
    results = run_on_ranks(_layout_and_group_sums, 8)
    grid = RankGrid({"tp": 2, "cp": 1, "ep": 1, "dp": 2, "pp": 2})
    for rank, result in enumerate(results):
        coords = grid.coordinates(rank)
        assert result["coords"] == (coords["tp"], coords["cp"], coords["dp"], coords["pp"])
        for name, (ranks, total, size) in result["sums"].items():
            assert rank in ranks, name
            assert total == float(sum(ranks)), name  # all_reduce over the real group
            assert size == len(ranks), name
        assert result["mesh"] == (("pp", "dp", "cp", "tp"), 2, coords["dp"])
