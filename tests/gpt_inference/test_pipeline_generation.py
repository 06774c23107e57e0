"""Generation over two pipeline stages (gloo ranks) reproduces the original's pp=2 run."""

from __future__ import annotations

import json

NAME = "gpt-pp2-resume.json"


def generate_on_rank(argv: list[str], prompts: list[str], params: dict) -> list[dict]:
    from gpt_infer_app.cli import parse_args
    from gpt_infer_app.setup import set_up
    from gpt_inference.sampling import SamplingParams

    generation = set_up(parse_args(argv))
    results = generation.engine.generate(prompts, SamplingParams(**params))
    return [r.record() for r in results]


def test_two_stage_pipeline_generates_the_originals_tokens(run_on_ranks, golden_dir):
    # Imported here: the rank processes load this file without the tests package.
    from tests.gpt_inference.golden_runs import assert_matches, fixture_args

    data = json.loads((golden_dir / "inference" / NAME).read_text())
    scenario = next(s for s in data["scenarios"] if s["kind"] == "engine")
    ranks = run_on_ranks(
        generate_on_rank,
        data["nproc"],
        fixture_args(golden_dir, data),
        scenario["prompts"],
        scenario["sampling_params"],
        timeout=240,
    )
    assert ranks[0] == ranks[1], "both stages must produce the same generations"
    for i, (record, expected) in enumerate(zip(ranks[0], scenario["output"], strict=True)):
        assert_matches(record, expected, f"pp2 prompt {i}")
