"""Pipeline layer placement follows the original's rules (Megatron core v0.14:
``get_num_layers_to_build``, ``get_transformer_layer_offset``, ``PipelineParallelLayerLayout``).

The expected tables are written out by hand from those rules, not computed: each row is
``(pp_rank, vp_stage): (layer numbers, pre_process, post_process)``, layer numbers global and
1-based, stages listed in stage order (stage i = rank i % P, chunk i // P).
"""

from __future__ import annotations

import pytest
from gpt_parallel.layout_config import DistributedConfig
from gpt_parallel.pipeline_layout import (
    PipelinePlan,
    StagePlan,
    parse_pipeline_layout,
    plan_from_config,
    plan_pipeline_stages,
)

PRE, POST, BOTH, MID = (True, False), (False, True), (True, True), (False, False)


def _table(plan: PipelinePlan) -> dict[tuple[int, int], tuple]:
    return {
        (s.pp_rank, s.vp_stage): (list(s.layer_numbers), s.pre_process, s.post_process)
        for s in plan.stages
    }


def _expect(rows: dict[tuple[int, int], tuple[list[int], tuple[bool, bool]]]) -> dict:
    return {key: (layers, *ends) for key, (layers, ends) in rows.items()}


RULE_CASES = {
    "pp1": (
        dict(num_layers=3, pipeline_model_parallel_size=1),
        {(0, 0): ([1, 2, 3], BOTH)},
    ),
    "even_pp2": (
        dict(num_layers=4, pipeline_model_parallel_size=2),
        {(0, 0): ([1, 2], PRE), (1, 0): ([3, 4], POST)},
    ),
    "even_pp4": (
        dict(num_layers=8, pipeline_model_parallel_size=4),
        {
            (0, 0): ([1, 2], PRE),
            (1, 0): ([3, 4], MID),
            (2, 0): ([5, 6], MID),
            (3, 0): ([7, 8], POST),
        },
    ),
    # The original's own example: 8 layers, 2 ranks, 2 chunks -> [0, 1] [4, 5] / [2, 3] [6, 7].
    "pp2_vpp2": (
        dict(num_layers=8, pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2),
        {
            (0, 0): ([1, 2], PRE),
            (1, 0): ([3, 4], MID),
            (0, 1): ([5, 6], MID),
            (1, 1): ([7, 8], POST),
        },
    ),
    # ... and 8 layers, 2 ranks, 4 chunks -> [0] [2] [4] [6] / [1] [3] [5] [7].
    "pp2_vpp4": (
        dict(num_layers=8, pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=4),
        {
            (0, 0): ([1], PRE),
            (1, 0): ([2], MID),
            (0, 1): ([3], MID),
            (1, 1): ([4], MID),
            (0, 2): ([5], MID),
            (1, 2): ([6], MID),
            (0, 3): ([7], MID),
            (1, 3): ([8], POST),
        },
    ),
    "vpp_1_means_none": (
        dict(num_layers=4, pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=1),
        {(0, 0): ([1, 2], PRE), (1, 0): ([3, 4], POST)},
    ),
    "first_and_last": (
        dict(
            num_layers=10,
            pipeline_model_parallel_size=4,
            decoder_first_pipeline_num_layers=1,
            decoder_last_pipeline_num_layers=3,
        ),
        {
            (0, 0): ([1], PRE),
            (1, 0): ([2, 3, 4], MID),
            (2, 0): ([5, 6, 7], MID),
            (3, 0): ([8, 9, 10], POST),
        },
    ),
    "first_only": (
        dict(num_layers=7, pipeline_model_parallel_size=3, decoder_first_pipeline_num_layers=1),
        {(0, 0): ([1], PRE), (1, 0): ([2, 3, 4], MID), (2, 0): ([5, 6, 7], POST)},
    ),
    "last_only": (
        dict(num_layers=5, pipeline_model_parallel_size=3, decoder_last_pipeline_num_layers=1),
        {(0, 0): ([1, 2], PRE), (1, 0): ([3, 4], MID), (2, 0): ([5], POST)},
    ),
    "first_pp2": (
        dict(num_layers=4, pipeline_model_parallel_size=2, decoder_first_pipeline_num_layers=1),
        {(0, 0): ([1], PRE), (1, 0): ([2, 3, 4], POST)},
    ),
    "first_last_no_middle": (
        dict(
            num_layers=5,
            pipeline_model_parallel_size=2,
            decoder_first_pipeline_num_layers=3,
            decoder_last_pipeline_num_layers=2,
        ),
        {(0, 0): ([1, 2, 3], PRE), (1, 0): ([4, 5], POST)},
    ),
    # Middle ranks may hold no layers at all (0 is divisible by 2).
    "first_last_empty_middle": (
        dict(
            num_layers=4,
            pipeline_model_parallel_size=4,
            decoder_first_pipeline_num_layers=2,
            decoder_last_pipeline_num_layers=2,
        ),
        {(0, 0): ([1, 2], PRE), (1, 0): ([], MID), (2, 0): ([], MID), (3, 0): ([3, 4], POST)},
    ),
    # first 2 / last 2 over 2 chunks: 1 per chunk; middle 4 per rank: 2 per chunk; a chunk
    # row holds 1 + 2 + 2 + 1 = 6 layers.
    "first_last_vpp2": (
        dict(
            num_layers=12,
            pipeline_model_parallel_size=4,
            virtual_pipeline_model_parallel_size=2,
            decoder_first_pipeline_num_layers=2,
            decoder_last_pipeline_num_layers=2,
        ),
        {
            (0, 0): ([1], PRE),
            (1, 0): ([2, 3], MID),
            (2, 0): ([4, 5], MID),
            (3, 0): ([6], MID),
            (0, 1): ([7], MID),
            (1, 1): ([8, 9], MID),
            (2, 1): ([10, 11], MID),
            (3, 1): ([12], POST),
        },
    ),
    # 6 layers + E + L = 8 slots, 2 per rank; E and L take one slot each.
    "account_both_pp4": (
        dict(
            num_layers=6,
            pipeline_model_parallel_size=4,
            account_for_embedding_in_pipeline_split=True,
            account_for_loss_in_pipeline_split=True,
        ),
        {(0, 0): ([1], PRE), (1, 0): ([2, 3], MID), (2, 0): ([4, 5], MID), (3, 0): ([6], POST)},
    ),
    "account_embedding": (
        dict(
            num_layers=7,
            pipeline_model_parallel_size=4,
            account_for_embedding_in_pipeline_split=True,
        ),
        {(0, 0): ([1], PRE), (1, 0): ([2, 3], MID), (2, 0): ([4, 5], MID), (3, 0): ([6, 7], POST)},
    ),
    "account_loss": (
        dict(num_layers=7, pipeline_model_parallel_size=2, account_for_loss_in_pipeline_split=True),
        {(0, 0): ([1, 2, 3, 4], PRE), (1, 0): ([5, 6, 7], POST)},
    ),
    # Only the very first / last chunk gives up a slot, not every chunk of ranks 0 / P-1.
    "account_both_vpp2": (
        dict(
            num_layers=6,
            pipeline_model_parallel_size=2,
            virtual_pipeline_model_parallel_size=2,
            account_for_embedding_in_pipeline_split=True,
            account_for_loss_in_pipeline_split=True,
        ),
        {
            (0, 0): ([1], PRE),
            (1, 0): ([2, 3], MID),
            (0, 1): ([4, 5], MID),
            (1, 1): ([6], POST),
        },
    ),
    "account_both_pp1": (
        dict(
            num_layers=3,
            pipeline_model_parallel_size=1,
            account_for_embedding_in_pipeline_split=True,
            account_for_loss_in_pipeline_split=True,
        ),
        {(0, 0): ([1, 2, 3], BOTH)},
    ),
}

LAYOUT_CASES = {
    "two_stages": (
        "Et|tttL",
        dict(num_layers=4, pipeline_model_parallel_size=2),
        {(0, 0): ([1], PRE), (1, 0): ([2, 3, 4], POST)},
    ),
    "standalone_embedding_vpp2": (
        "E|tt|tt|tL",
        dict(num_layers=5, pipeline_model_parallel_size=2),
        {(0, 0): ([], PRE), (1, 0): ([1, 2], MID), (0, 1): ([3, 4], MID), (1, 1): ([5], POST)},
    ),
    "repetition": (
        "Et*2|(tt|)*2tL",
        dict(num_layers=7, pipeline_model_parallel_size=2),
        {(0, 0): ([1, 2], PRE), (1, 0): ([3, 4], MID), (0, 1): ([5, 6], MID), (1, 1): ([7], POST)},
    ),
    "commas_and_empty_stages": (
        "E|t,t|(t)*2|L",
        dict(num_layers=4, pipeline_model_parallel_size=4),
        {(0, 0): ([], PRE), (1, 0): ([1, 2], MID), (2, 0): ([3, 4], MID), (3, 0): ([], POST)},
    ),
    "pp3_vpp2": (
        "Et|t|t|t|t|tL",
        dict(num_layers=6, pipeline_model_parallel_size=3),
        {
            (0, 0): ([1], PRE),
            (1, 0): ([2], MID),
            (2, 0): ([3], MID),
            (0, 1): ([4], MID),
            (1, 1): ([5], MID),
            (2, 1): ([6], POST),
        },
    ),
    "vpp_given_and_agreeing": (
        "Et|t|t|tL",
        dict(num_layers=4, pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2),
        {(0, 0): ([1], PRE), (1, 0): ([2], MID), (0, 1): ([3], MID), (1, 1): ([4], POST)},
    ),
    "uneven_by_hand": (
        "Ettt|t|t|ttL",
        dict(num_layers=7, pipeline_model_parallel_size=4),
        {(0, 0): ([1, 2, 3], PRE), (1, 0): ([4], MID), (2, 0): ([5], MID), (3, 0): ([6, 7], POST)},
    ),
}


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_rule_based_placement_matches_the_original(case: str) -> None:
    kwargs, expected = RULE_CASES[case]
    plan = plan_pipeline_stages(**kwargs)
    assert _table(plan) == _expect(expected)
    assert [(s.pp_rank, s.vp_stage) for s in plan.stages] == list(expected)
    assert all(s.mtp_layer_numbers == () for s in plan.stages)


@pytest.mark.parametrize("case", sorted(LAYOUT_CASES))
def test_layout_string_placement(case: str) -> None:
    layout, kwargs, expected = LAYOUT_CASES[case]
    plan = plan_pipeline_stages(pipeline_model_parallel_layout=layout, **kwargs)
    assert _table(plan) == _expect(expected)


def test_every_layer_is_built_exactly_once_in_order() -> None:
    for kwargs, _ in RULE_CASES.values():
        plan = plan_pipeline_stages(**kwargs)
        built = [n for s in plan.stages for n in s.layer_numbers]
        assert built == list(range(1, kwargs["num_layers"] + 1))


def test_layout_sets_the_virtual_size() -> None:
    plan = plan_pipeline_stages(
        num_layers=5, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="E|tt|tt|tL"
    )
    assert plan.virtual_pipeline_model_parallel_size == 2
    flat = plan_pipeline_stages(
        num_layers=4, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et|tttL"
    )
    assert flat.virtual_pipeline_model_parallel_size is None


def test_parse_expands_groups_and_repeats() -> None:
    assert parse_pipeline_layout("E|(t|)*3,m|m||L") == (
        ("E",),
        ("t",),
        ("t",),
        ("t",),
        ("m",),
        ("m",),
        (),
        ("L",),
    )
    assert parse_pipeline_layout("Et*3|(tt|)*2,t*10L") == (
        ("E", "t", "t", "t"),
        ("t", "t"),
        ("t", "t"),
        ("t",) * 10 + ("L",),
    )
    assert parse_pipeline_layout("(t*2|)*2") == (("t", "t"), ("t", "t"), ())


def test_mtp_layers_sit_on_the_last_stage() -> None:
    plan = plan_pipeline_stages(
        num_layers=4,
        pipeline_model_parallel_size=2,
        pipeline_model_parallel_layout="Ett|ttmmL",
        mtp_num_layers=2,
    )
    assert plan.stage(1).mtp_layer_numbers == (1, 2)
    assert plan.stage(0).mtp_layer_numbers == ()
    ruled = plan_pipeline_stages(num_layers=4, pipeline_model_parallel_size=2, mtp_num_layers=1)
    assert ruled.stage(1) == StagePlan(1, 0, (3, 4), False, True, (1,))
    assert ruled.stage(0).mtp_layer_numbers == ()


def test_stage_lookup_and_rank_chunks() -> None:
    plan = plan_pipeline_stages(
        num_layers=8, pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2
    )
    assert plan.stage(1, 1).layer_numbers == (7, 8)
    assert [s.layer_numbers for s in plan.rank_stages(0)] == [(1, 2), (5, 6)]
    with pytest.raises(ValueError, match="--pipeline-model-parallel-size"):
        plan.stage(2, 0)
    with pytest.raises(ValueError, match="--num-virtual-stages-per-pipeline-rank"):
        plan.stage(0, 2)


def test_plan_from_config_reads_the_flags() -> None:
    config = DistributedConfig(
        pipeline_model_parallel_size=4,
        decoder_first_pipeline_num_layers=1,
        decoder_last_pipeline_num_layers=3,
    )
    assert plan_from_config(config, num_layers=10) == plan_pipeline_stages(
        **RULE_CASES["first_and_last"][0]
    )


BAD = {
    "layout_stage_count": (
        dict(
            num_layers=3, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et|t|tL"
        ),
        "--pipeline-model-parallel-layout.*--pipeline-model-parallel-size",
    ),
    "layout_vpp_conflict": (
        dict(
            num_layers=4,
            pipeline_model_parallel_size=2,
            virtual_pipeline_model_parallel_size=3,
            pipeline_model_parallel_layout="Et|t|t|tL",
        ),
        "--num-virtual-stages-per-pipeline-rank 3.*--pipeline-model-parallel-layout",
    ),
    "layout_pp1_many_stages": (
        dict(num_layers=2, pipeline_model_parallel_size=1, pipeline_model_parallel_layout="Et|tL"),
        "--pipeline-model-parallel-layout.*--pipeline-model-parallel-size",
    ),
    "layout_layer_count": (
        dict(num_layers=3, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et|tL"),
        "--pipeline-model-parallel-layout has 2 .*--num-layers 3",
    ),
    "layout_embedding_not_first": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="tE|tL"),
        "--pipeline-model-parallel-layout.*'E'",
    ),
    "layout_embedding_in_second_stage": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="|EttL"),
        "--pipeline-model-parallel-layout.*'E'",
    ),
    "layout_embedding_twice": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et|EtL"),
        "--pipeline-model-parallel-layout.*'E'",
    ),
    "layout_loss_not_last": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="EtL|t"),
        "--pipeline-model-parallel-layout.*'L'",
    ),
    "layout_no_loss": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et|t"),
        "--pipeline-model-parallel-layout.*'L'",
    ),
    "layout_unknown_symbol": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et|tX"),
        "--pipeline-model-parallel-layout: unknown symbol 'X'",
    ),
    "layout_space": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et| tL"),
        "--pipeline-model-parallel-layout: unknown symbol ' '",
    ),
    "layout_open_paren": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="E(t|tL"),
        "--pipeline-model-parallel-layout: '\\('",
    ),
    "layout_group_without_count": (
        dict(
            num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="E(t)|tL"
        ),
        "--pipeline-model-parallel-layout: the group",
    ),
    "layout_star_without_count": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et*|tL"),
        "--pipeline-model-parallel-layout: '\\*'",
    ),
    "layout_stray_digit": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="E2t|tL"),
        "--pipeline-model-parallel-layout: unexpected '2'",
    ),
    "layout_mtp_count": (
        dict(num_layers=2, pipeline_model_parallel_size=2, pipeline_model_parallel_layout="Et|tmL"),
        "--pipeline-model-parallel-layout.*--mtp-num-layers",
    ),
    "layout_mtp_not_last_stage": (
        dict(
            num_layers=2,
            pipeline_model_parallel_size=2,
            pipeline_model_parallel_layout="Etm|tL",
            mtp_num_layers=1,
        ),
        "--pipeline-model-parallel-layout.*last stage",
    ),
    "layout_mtp_before_layer": (
        dict(
            num_layers=2,
            pipeline_model_parallel_size=2,
            pipeline_model_parallel_layout="Et|mtL",
            mtp_num_layers=1,
        ),
        "--pipeline-model-parallel-layout.*before",
    ),
    "layout_with_first": (
        dict(
            num_layers=2,
            pipeline_model_parallel_size=2,
            pipeline_model_parallel_layout="Et|tL",
            decoder_first_pipeline_num_layers=1,
        ),
        "--pipeline-model-parallel-layout cannot be combined.*--decoder-first",
    ),
    "layout_with_account": (
        dict(
            num_layers=2,
            pipeline_model_parallel_size=2,
            pipeline_model_parallel_layout="Et|tL",
            account_for_loss_in_pipeline_split=True,
        ),
        "--pipeline-model-parallel-layout cannot be combined.*--account-for",
    ),
    "uneven_with_account": (
        dict(
            num_layers=4,
            pipeline_model_parallel_size=2,
            decoder_last_pipeline_num_layers=1,
            account_for_embedding_in_pipeline_split=True,
        ),
        "--decoder-first-pipeline-num-layers / --decoder-last.*--account-for-embedding",
    ),
    "first_zero": (
        dict(num_layers=4, pipeline_model_parallel_size=2, decoder_first_pipeline_num_layers=0),
        "--decoder-first-pipeline-num-layers must be larger than 0",
    ),
    "last_negative": (
        dict(num_layers=4, pipeline_model_parallel_size=2, decoder_last_pipeline_num_layers=-1),
        "--decoder-last-pipeline-num-layers must be larger than 0",
    ),
    "first_not_divisible_by_vpp": (
        dict(
            num_layers=12,
            pipeline_model_parallel_size=4,
            virtual_pipeline_model_parallel_size=2,
            decoder_first_pipeline_num_layers=3,
        ),
        "--decoder-first-pipeline-num-layers 3.*--num-virtual-stages-per-pipeline-rank 2",
    ),
    "negative_middle": (
        dict(
            num_layers=4,
            pipeline_model_parallel_size=4,
            decoder_first_pipeline_num_layers=3,
            decoder_last_pipeline_num_layers=3,
        ),
        "--decoder-first-pipeline-num-layers 3 and --decoder-last-pipeline-num-layers 3 leave -2",
    ),
    "first_last_do_not_sum": (
        dict(
            num_layers=5,
            pipeline_model_parallel_size=2,
            decoder_first_pipeline_num_layers=1,
            decoder_last_pipeline_num_layers=1,
        ),
        "--decoder-first-pipeline-num-layers 1 and --decoder-last-pipeline-num-layers 1 leave 3",
    ),
    "uneven_middle": (
        dict(
            num_layers=9,
            pipeline_model_parallel_size=4,
            decoder_first_pipeline_num_layers=2,
            decoder_last_pipeline_num_layers=2,
        ),
        "5 layers left by --decoder-first-pipeline-num-layers",
    ),
    "middle_not_divisible_by_vpp": (
        dict(
            num_layers=10,
            pipeline_model_parallel_size=4,
            virtual_pipeline_model_parallel_size=2,
            decoder_first_pipeline_num_layers=2,
            decoder_last_pipeline_num_layers=2,
        ),
        "--num-virtual-stages-per-pipeline-rank 2",
    ),
    "uneven_pp1": (
        dict(num_layers=4, pipeline_model_parallel_size=1, decoder_first_pipeline_num_layers=4),
        "--decoder-first-pipeline-num-layers.*--pipeline-model-parallel-size > 1",
    ),
    "even_not_divisible": (
        dict(num_layers=5, pipeline_model_parallel_size=2),
        "--num-layers 5 is not divisible by --pipeline-model-parallel-size 2",
    ),
    "even_not_divisible_pp4": (
        dict(num_layers=6, pipeline_model_parallel_size=4),
        "--num-layers 6 is not divisible by --pipeline-model-parallel-size 4",
    ),
    "account_not_divisible": (
        dict(
            num_layers=6,
            pipeline_model_parallel_size=2,
            account_for_embedding_in_pipeline_split=True,
        ),
        "--num-layers 6 \\+ 1 \\(--account-for-embedding-in-pipeline-split\\) is not divisible",
    ),
    "per_rank_not_divisible_by_vpp": (
        dict(num_layers=6, pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2),
        "3 layers per pipeline rank.*--num-virtual-stages-per-pipeline-rank 2",
    ),
    "vpp_with_pp1": (
        dict(num_layers=4, pipeline_model_parallel_size=1, virtual_pipeline_model_parallel_size=2),
        "--num-virtual-stages-per-pipeline-rank 2 needs --pipeline-model-parallel-size > 1",
    ),
    "pp_zero": (
        dict(num_layers=4, pipeline_model_parallel_size=0),
        "--pipeline-model-parallel-size must be at least 1",
    ),
    "no_layers": (
        dict(num_layers=0, pipeline_model_parallel_size=1),
        "--num-layers must be at least 1",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_flag(case: str) -> None:
    kwargs, message = BAD[case]
    with pytest.raises(ValueError, match=message) as caught:
        plan_pipeline_stages(**kwargs)
    assert len(str(caught.value).splitlines()) == 1
