"""A bounded load test on loopback: 64 clients send 4 greedy requests each to a server whose
dynamic engine runs at most 8 requests at a time; every request is answered with 200 and the
static engine's answer, and the engine ends with all its KV blocks free. Latency and tokens/s
are printed, never asserted (the machine may be busy)."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
import uvicorn
from gpt_inference.batcher import DynamicBatcher, describe
from gpt_inference.server.api_request import parse_api_request
from gpt_inference.server.app import create_app
from gpt_inference.server.service import GenerationService

from tests.conftest import require_shared_dir
from tests.gpt_inference.golden_runs import assert_matches, fixture, fixture_args

GOLDEN = require_shared_dir() / "reference" / "golden"
CLIENTS = 64
REQUESTS_PER_CLIENT = 4
MAX_REQUESTS = 8
OVERALL_TIMEOUT_S = 120.0
DYNAMIC = [
    "--inference-dynamic-batching",
    "--inference-max-requests",
    str(MAX_REQUESTS),
    "--inference-dynamic-batching-max-requests-override",
    str(MAX_REQUESTS),
    "--inference-dynamic-batching-max-tokens-override",
    "16",
    "--inference-dynamic-batching-chunk-size",
    "4",
    # 26 blocks of 4 tokens: 8 long requests do not all fit, so some pause
    "--inference-dynamic-batching-buffer-size-gb",
    "0.0001",
]
#: Prompts of 1 to 16 tokens (NullTokenizer: ids written as numbers).
PROMPTS = [
    "5",
    "17 230",
    "5 17 230 4",
    "9 8 7 6 5 4 3",
    "100 200 300 400 500 600 700 800 900 11 12",
    " ".join(str(i) for i in range(40, 56)),
]
TOKENS_TO_GENERATE = [1, 2, 5, 8, 12]


def _bodies(client: int) -> list[dict]:
    """This client's requests: mixed prompts, lengths and log-prob choices, all greedy."""
    draw = random.Random(client)
    bodies = []
    for _ in range(REQUESTS_PER_CLIENT):
        prompts = draw.sample(PROMPTS, draw.choice([1, 1, 1, 2]))
        bodies.append(
            {
                "prompts": prompts,
                "tokens_to_generate": draw.choice(TOKENS_TO_GENERATE),
                "top_k": 1,
                "logprobs": draw.random() < 0.5,
                "no_log": True,
            }
        )
    return bodies


def _key(body: dict) -> str:
    return json.dumps(body, sort_keys=True)


def _put(url: str, body: dict) -> tuple[int, dict, float]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60.0) as answer:
            status, payload = answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        status, payload = err.code, {"error": err.read().decode(errors="replace")}
    return status, payload, time.monotonic() - start


class _LoopbackServer:
    """uvicorn on a socket bound to 127.0.0.1 (port chosen by the OS), in a thread."""

    def __init__(self, app) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> _LoopbackServer:
        self.thread.start()
        end = time.monotonic() + 30.0
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < end, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15.0)
        self.socket.close()


@pytest.mark.timeout(OVERALL_TIMEOUT_S + 60)
def test_64_clients_through_8_request_slots_get_the_static_engines_answers():
    from gpt_infer_app.cli import parse_args
    from gpt_infer_app.setup import set_up

    args = fixture_args(GOLDEN, fixture(GOLDEN, "gpt-infer-null.json"))
    generation = set_up(parse_args([*args, *DYNAMIC]))
    dynamic = generation.dynamic
    assert dynamic is not None and dynamic.limits.max_requests == MAX_REQUESTS

    plan = {client: _bodies(client) for client in range(CLIENTS)}
    static = GenerationService(generation.engine)
    expected = {}
    for bodies in plan.values():
        for body in bodies:
            if _key(body) not in expected:
                expected[_key(body)] = static.run_api(parse_api_request(body))

    service = GenerationService(generation.engine, DynamicBatcher(dynamic))
    answers: dict[int, list[tuple[int, dict, float]]] = {}
    with _LoopbackServer(create_app(service, log=lambda _text: None)) as server:

        def client(number: int) -> None:
            answers[number] = [_put(server.url + "/api", body) for body in plan[number]]

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            futures = [pool.submit(client, number) for number in range(CLIENTS)]
            done, not_done = wait(futures, timeout=OVERALL_TIMEOUT_S)
            for future in not_done:
                future.cancel()
        elapsed = time.monotonic() - start
        assert not not_done, f"{len(not_done)} clients unfinished after {OVERALL_TIMEOUT_S} s"
        for future in done:
            future.result()  # a client's own failure (connection refused, timeout) surfaces

    latencies, generated = [], 0
    for number, bodies in plan.items():
        for body, (status, payload, seconds) in zip(bodies, answers[number], strict=True):
            assert status == 200, f"client {number}: {status} {payload}"
            assert_matches(payload, expected[_key(body)], f"client {number} {body}")
            latencies.append(seconds)
            generated += sum(
                len(tokens) - len(prompt.split())
                for tokens, prompt in zip(payload["tokens"], body["prompts"])
            )
    state = describe(dynamic)
    assert state["most_running"] <= MAX_REQUESTS
    assert state["most_running"] > 1  # the clients' requests shared steps
    assert state["free_blocks"] == state["blocks"]  # every request gave its blocks back
    assert not dynamic.has_unfinished_requests()

    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"\nload: {len(latencies)} requests from {CLIENTS} clients in {elapsed:.1f} s; "
        f"latency p50 {p50:.3f} s, p99 {p99:.3f} s; {generated} tokens generated, "
        f"{generated / elapsed:.1f} tokens/s; engine {state}"
    )
