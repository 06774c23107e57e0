"""The static engine reproduces the original's generations from its checkpoints: tokens and
text exactly, log-probs within 1e-4, seeded samples draw for draw."""

from __future__ import annotations

import json

import pytest
from gpt_inference.sampling import SamplingParams
from gpt_inference.server.service import GenerationService, api_response, sampling_params

from tests.conftest import require_shared_dir
from tests.gpt_inference.golden_runs import assert_matches, generation_for

GOLDEN = require_shared_dir() / "reference" / "golden"
FILES = ("gpt-infer-bpe.json", "gpt-infer-null.json", "llama-resume.json")


def _scenarios(kind: str) -> list:
    cases = []
    for name in FILES:
        data = json.loads((GOLDEN / "inference" / name).read_text())
        for scenario in data["scenarios"]:
            if scenario["kind"] == kind:
                cases.append(pytest.param(name, scenario, id=f"{name}:{scenario['name']}"))
    return cases


@pytest.mark.parametrize(("name", "scenario"), _scenarios("engine"))
def test_engine_scenario_matches_the_original(name, scenario):
    engine = generation_for(GOLDEN, name).engine
    seeded = scenario.get("engine_random_seed")
    engine.random_seed = seeded
    try:
        results = engine.generate(
            scenario["prompts"], SamplingParams(**scenario["sampling_params"])
        )
    finally:
        engine.random_seed = None
    assert len(results) == len(scenario["output"])
    for i, (result, expected) in enumerate(zip(results, scenario["output"])):
        record = result.record()
        assert set(record) == set(expected), f"prompt {i}: fields {set(record) ^ set(expected)}"
        assert_matches(record, expected, f"{scenario['name']} prompt {i}")


@pytest.mark.parametrize(("name", "scenario"), _scenarios("server"))
def test_server_call_matches_run_mcore_engine(name, scenario):
    """What `PUT /api` computes (the original's `run_mcore_engine`) for the fixture's calls."""
    generation = generation_for(GOLDEN, name)
    service = GenerationService(generation.engine)
    p = scenario["params"]
    params = sampling_params(
        temperature=p.get("temperature", 1.0),
        top_k=p.get("top_k", 0),
        top_p=p.get("top_p", 0.0),
        logprobs=p.get("logprobs", True),
        tokens_to_generate=p.get("tokens_to_generate", 0),
        top_n_logprobs=p.get("top_n_logprobs", 0),
    )
    tokens = service.tokenize(scenario["prompts"], add_bos=False)
    response = api_response(service.generate(tokens, params), params)
    assert set(response) == set(scenario["output"])
    assert_matches(response, scenario["output"], scenario["name"])
