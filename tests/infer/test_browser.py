"""The page at `/index.html` works in a real browser: headless Chromium (Debian's package,
driven by playwright) types a prompt, clicks Submit and shows the static engine's completion.
The browser talks only to the server on 127.0.0.1; every other request is refused."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import torch
import uvicorn
from gpt_inference.server.api_request import parse_api_request
from gpt_inference.server.app import create_app
from gpt_inference.server.service import GenerationService

from tests.conftest import require_shared_dir
from tests.gpt_inference.golden_runs import fixture, fixture_args

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROMPT = "5 17 230 4"
TOKENS_TO_GENERATE = 12
#: The page sends no seed, so the default generator draws; both runs start from this seed.
TORCH_SEED = 20260
STEP_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} not found: `apt-get install chromium` to run the browser test",
)


class _LoopbackServer:
    """uvicorn on a socket bound to 127.0.0.1 (port chosen by the OS), in a thread."""

    def __init__(self, app) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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


@pytest.mark.timeout(120)
def test_the_page_shows_the_static_engines_completion(tmp_path):
    from gpt_infer_app.cli import parse_args
    from gpt_infer_app.setup import set_up
    from playwright.sync_api import sync_playwright

    golden = require_shared_dir() / "reference" / "golden"
    generation = set_up(parse_args(fixture_args(golden, fixture(golden, "gpt-infer-null.json"))))
    service = GenerationService(generation.engine)
    # What the page's script sends for this prompt and token count (its other settings are
    # the API's defaults: temperature 1, no top-k/top-p, no seed).
    body = {"prompts": [PROMPT], "tokens_to_generate": TOKENS_TO_GENERATE}
    torch.manual_seed(TORCH_SEED)
    expected = service.run_api(parse_api_request(body))["text"][0]
    assert expected.startswith(PROMPT) and len(expected) > len(PROMPT)

    with _LoopbackServer(create_app(service, log=lambda _text: None)) as server:
        refused: list[str] = []
        sent: list[dict] = []
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                timeout=STEP_TIMEOUT_MS,
            )
            try:
                context.set_default_timeout(STEP_TIMEOUT_MS)

                def only_loopback(route) -> None:
                    if route.request.url.startswith(server.url + "/"):
                        route.continue_()
                    else:
                        refused.append(route.request.url)
                        route.abort()

                context.route("**/*", only_loopback)
                page = context.pages[0] if context.pages else context.new_page()
                page.on(
                    "request",
                    lambda r: sent.append(r.post_data_json) if r.method == "PUT" else None,
                )
                page.goto(server.url + "/index.html")
                page.fill("#prompt", PROMPT)
                page.fill("#tokens_to_generate", str(TOKENS_TO_GENERATE))
                torch.manual_seed(TORCH_SEED)  # the server draws from the same state
                page.click("#submit")
                page.wait_for_function(
                    "() => document.getElementById('response').value !== ''"
                    " || document.getElementById('status').textContent.startsWith('error')"
                )
                shown = page.input_value("#response")
                status = page.text_content("#status")
            finally:
                context.close()

    assert status == "", f"the page shows {status!r}"
    assert sent == [body]
    assert shown == expected
    assert refused == []
