"""With `--inference-dynamic-batching` the server serves concurrent clients through the
dynamic engine: their requests share its steps and each gets the static engine's answer."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from gpt_inference.batcher import DynamicBatcher
from gpt_inference.server.app import create_app
from gpt_inference.server.service import GenerationService

from tests.conftest import require_shared_dir
from tests.gpt_inference.golden_runs import assert_matches, fixture_args

GOLDEN = require_shared_dir() / "reference" / "golden"
SERVER = json.loads((GOLDEN / "inference" / "server.json").read_text())
GREEDY = next(e for e in SERVER["exchanges"] if e["name"] == "greedy-logprobs")
DYNAMIC = [
    "--inference-dynamic-batching",
    "--inference-dynamic-batching-buffer-size-gb",
    "0.00005",
    "--inference-dynamic-batching-chunk-size",
    "4",
    "--inference-dynamic-batching-max-tokens-override",
    "6",
]


@pytest.fixture(scope="module")
def served():
    from gpt_infer_app.cli import parse_args
    from gpt_infer_app.setup import set_up

    args = fixture_args(GOLDEN, SERVER)
    at = args.index("--port")
    del args[at : at + 2]
    generation = set_up(parse_args([*args, *DYNAMIC]))
    assert generation.dynamic is not None
    service = GenerationService(generation.engine, DynamicBatcher(generation.dynamic))
    with TestClient(create_app(service, log=lambda _text: None)) as client:
        yield client, generation.dynamic


def test_concurrent_clients_each_get_the_static_engines_answer(served):
    client, dynamic = served
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _i: client.put("/api", json=GREEDY["body"]), range(6)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert_matches(answer.json(), GREEDY["response"]["body"], "dynamic")
    assert dynamic.stats["most_running"] > 1  # requests shared steps
    assert dynamic.stats["paused"] > 0  # 12 tokens x 12 requests do not fit in 12 blocks
    assert len(dynamic.allocator.free) == dynamic.layout.num_blocks


def test_a_refused_request_does_not_stop_the_engine(served):
    client, _dynamic = served
    refused = client.put("/api", json={"prompts": ["5 17"], "tokens_to_generate": 200})
    assert refused.status_code == 400 and refused.json()["field"] == "tokens_to_generate"
    again = client.put("/api", json=GREEDY["body"])
    assert_matches(again.json(), GREEDY["response"]["body"], "after a refusal")
