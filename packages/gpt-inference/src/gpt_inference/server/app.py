"""The FastAPI application: `PUT /api`, `POST /completions` and the page at `/index.html`.

Requests run one at a time on the engine (the service's lock), in FastAPI's worker threads, so
the event loop keeps accepting connections and a SIGTERM lets uvicorn finish the requests in
flight before the process exits. A refused request is a 4xx with `{"message", "field"}`; an
error inside generation is a 500 for that request only, and the server goes on serving.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from gpt_inference.server.api_request import parse_api_request
from gpt_inference.server.completions import (
    CompletionRequest,
    completion_choices,
    parse_completion_request,
)
from gpt_inference.server.errors import RequestError
from gpt_inference.server.service import GenerationService, api_response, sampling_params

NOT_JSON = (
    "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."
)
BAD_JSON = "The browser (or proxy) sent a request that this server could not understand."


def index_html() -> str:
    return files("gpt_inference.server").joinpath("index.html").read_text()


def create_app(service: GenerationService, log: Callable[[str], None] = print) -> FastAPI:
    """The server's application around one generation service."""
    app = FastAPI(title="gpt-stack text generation", docs_url=None, redoc_url=None)
    page = index_html()

    @app.exception_handler(RequestError)
    def refused(_request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(404)
    def not_found(request: Request, _err: Exception) -> JSONResponse:
        message = f"path {request.url.path} not found"
        return JSONResponse({"message": message, "field": "path"}, status_code=404)

    @app.exception_handler(405)
    def not_allowed(request: Request, _err: Exception) -> JSONResponse:
        message = f"method {request.method} is not allowed on {request.url.path}"
        return JSONResponse({"message": message, "field": "method"}, status_code=405)

    @app.get("/index.html", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.put("/api")
    def generate(body: Any = _json_body()) -> JSONResponse:
        request = parse_api_request(body)
        if not request.no_log:
            log(json.dumps(body))
        return _answer(lambda: service.run_api(request))

    @app.post("/completions")
    def completions(body: Any = _json_body()) -> Any:
        request = parse_completion_request(body, service.tokenizer)
        if request.stream:
            return StreamingResponse(_stream(service, request), media_type="text/event-stream")
        return _answer(
            lambda: {
                "choices": completion_choices(
                    request, _run_completion(service, request), service.tokenizer
                )
            }
        )

    return app


def _answer(work: Callable[[], dict[str, Any]]) -> JSONResponse:
    """`work`'s answer; a refusal is its 4xx, any other failure a 500 for this request only."""
    try:
        return JSONResponse(work())
    except RequestError as err:
        return JSONResponse(err.body(), status_code=err.status)
    except Exception as err:  # noqa: BLE001 - one request fails, the server goes on
        return JSONResponse(
            {"message": f"Internal Server Error: {_first_line(err)}"}, status_code=500
        )


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _json_body() -> Any:
    """A dependency reading the body as the original's Flask did: JSON content type, valid JSON."""
    from fastapi import Depends

    async def read(request: Request) -> Any:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise RequestError("body", NOT_JSON, status=415)
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RequestError("body", BAD_JSON) from None

    return Depends(read)


def _run_completion(
    service: GenerationService,
    request: CompletionRequest,
    on_token: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    params = sampling_params(
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p,
        logprobs=True,
        tokens_to_generate=request.max_tokens,
        top_n_logprobs=request.logprobs,
    )
    tokens = request.prompt_tokens
    if tokens is None:
        tokens = service.run_checked(lambda: service.tokenize(request.prompts, False))
    results = service.run_checked(
        lambda: service.generate(tokens, params, random_seed=request.seed, on_token=on_token)
    )
    return api_response(results, params)


def _stream(service: GenerationService, request: CompletionRequest) -> Iterator[str]:
    """Server-sent events: one `{"choices": [{"index", "text"}]}` per generated token as it
    is made, a last event with the full choices, then `[DONE]`."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    tokenizer = service.tokenizer

    def on_token(index: int, token: int) -> None:
        events.put(("token", (index, token)))

    def work() -> None:
        try:
            response = _run_completion(service, request, on_token)
            events.put(("done", completion_choices(request, response, tokenizer)))
        except RequestError as err:
            events.put(("error", err.body()))
        except Exception as err:  # noqa: BLE001 - reported to the client as an event
            events.put(("error", {"message": f"Internal Server Error: {_first_line(err)}"}))

    threading.Thread(target=work, daemon=True).start()
    while True:
        kind, payload = events.get()
        if kind == "token":
            index, token = payload
            chunk = {"choices": [{"index": index, "text": _piece(tokenizer, token)}]}
            yield f"data: {json.dumps(chunk)}\n\n"
        elif kind == "done":
            yield f"data: {json.dumps({'choices': payload, 'finished': True})}\n\n"
            break
        else:
            yield f"data: {json.dumps({'error': payload})}\n\n"
            break
    yield "data: [DONE]\n\n"


def _piece(tokenizer: Any, token: int) -> str:
    from gpt_inference.text import token_text

    return token_text(tokenizer, token)
