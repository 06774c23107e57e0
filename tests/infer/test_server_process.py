"""`infer` as a user runs it: it serves on the given host and port, and SIGTERM lets the
request in flight finish before the process exits with code 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import require_shared_dir
from tests.gpt_inference.golden_runs import fixture_args

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = require_shared_dir() / "reference" / "golden"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, deadline_s: float = 90.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"infer exited early: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/index.html", timeout=1.0) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("infer did not start serving")


def _put(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120.0) as answer:
        return answer.status, json.loads(answer.read())


def test_sigterm_finishes_the_request_in_flight_then_exits_0():
    data = json.loads((GOLDEN / "inference" / "gpt-infer-null.json").read_text())
    port = _free_port()
    command = [sys.executable, str(ROOT / "apps" / "infer"), *fixture_args(GOLDEN, data)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process)
        answers = []
        body = {"prompts": ["5 17 230 4"] * 64, "tokens_to_generate": 60, "top_k": 1}

        def slow_request() -> None:
            answers.append(_put(url + "/api", body))

        worker = threading.Thread(target=slow_request)
        worker.start()
        time.sleep(1.0)  # the request is being generated
        process.send_signal(signal.SIGTERM)
        worker.join(timeout=120)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert len(answers) == 1 and answers[0][0] == 200
    tokens = answers[0][1]["tokens"]
    assert len(tokens) == 64 and tokens[0][:8] == [5, 17, 230, 4, 31, 220, 543, 804]
