"""`PUT /api`: the original's request fields, checked in its order with its wording.

Where the original answered a bad field with status 200 and a bare string, or failed later
inside generation, this answers 400 with the same wording and the field's name. Fields the
original accepted but never used are used here: `random_seed` seeds the draws, `add_BOS`
prepends the BOS (or end-of-document) id, `stop_token` ends generation like end-of-document,
`stop_on_eol` / `stop_on_double_eol` end it after a line end, `prevent_newline_after_colon`
forbids a line end right after a colon. Beam search (`beam_width`) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpt_inference.server.errors import RequestError

MAX_PROMPTS = 128


@dataclass(frozen=True)
class ApiRequest:
    """A checked `PUT /api` body."""

    prompts: list[str]
    tokens_to_generate: int = 64
    logprobs: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    add_BOS: bool = False
    stop_on_eol: bool = False
    stop_on_double_eol: bool = False
    prevent_newline_after_colon: bool = False
    random_seed: int = -1
    stop_token: int | None = None
    no_log: bool = False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(name, f"{name} must be a boolean value")
    return value


def parse_api_request(body: Any) -> ApiRequest:
    """The checked request, or RequestError naming the first field at fault."""
    if not isinstance(body, dict):
        raise RequestError("prompts", "the request body must be a JSON object with prompts")
    if "prompts" not in body:
        raise RequestError("prompts", "prompts argument required")
    if "max_len" in body:
        raise RequestError("max_len", "max_len is no longer used.  Replace with tokens_to_generate")
    if "sentences" in body:
        raise RequestError("sentences", "sentences is no longer used.  Replace with prompts")
    prompts = body["prompts"]
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise RequestError("prompts", "prompts is not a list of strings")
    if len(prompts) == 0:
        raise RequestError("prompts", "prompts is empty")
    if len(prompts) > MAX_PROMPTS:
        raise RequestError("prompts", f"Maximum number of prompts is {MAX_PROMPTS}")

    tokens = body.get("tokens_to_generate", 64)
    if not _is_int(tokens):
        raise RequestError(
            "tokens_to_generate", "tokens_to_generate must be an integer greater than 0"
        )
    if tokens < 0:
        raise RequestError(
            "tokens_to_generate", "tokens_to_generate must be an integer greater than or equal to 0"
        )
    logprobs = _bool(body, "logprobs")
    if tokens == 0 and not logprobs:
        raise RequestError("logprobs", "tokens_to_generate=0 implies logprobs should be True")

    temperature = body.get("temperature", 1.0)
    if not _is_number(temperature):
        raise RequestError(
            "temperature", "temperature must be a positive number less than or equal to 1000.0"
        )
    if not 0.0 < temperature <= 100.0:
        raise RequestError(
            "temperature", "temperature must be a positive number less than or equal to 100.0"
        )
    top_k = body.get("top_k", 0)
    if not _is_int(top_k):
        raise RequestError(
            "top_k",
            "top_k must be an integer equal to or greater than 0 and less than or equal to 1000",
        )
    if not 0 <= top_k <= 1000:
        raise RequestError(
            "top_k", "top_k must be equal to or greater than 0 and less than or equal to 1000"
        )
    top_p = body.get("top_p", 0.0)
    if "top_p" in body:
        if not isinstance(top_p, float):
            raise RequestError("top_p", "top_p must be a positive float less than or equal to 1.0")
        if top_p > 0.0 and top_k > 0:
            raise RequestError("top_p", "cannot set both top-k and top-p samplings.")
        if not 0 <= top_p <= 1.0:
            raise RequestError("top_p", "top_p must be less than or equal to 1.0")
    _check_top_p_schedule(body, top_p)

    add_bos = _bool(body, "add_BOS")
    if any(len(p) == 0 for p in prompts) and not add_bos:
        raise RequestError("prompts", "Empty prompts require add_BOS=true")
    stop_on_double_eol = _bool(body, "stop_on_double_eol")
    stop_on_eol = _bool(body, "stop_on_eol")
    prevent_newline = _bool(body, "prevent_newline_after_colon")
    random_seed = body.get("random_seed", -1)
    if "random_seed" in body:
        if not _is_int(random_seed):
            raise RequestError("random_seed", "random_seed must be integer")
        if random_seed < 0:
            raise RequestError("random_seed", "random_seed must be a positive integer")
    no_log = _bool(body, "no_log")
    if "beam_width" in body:
        beam = body["beam_width"]
        if not _is_int(beam):
            raise RequestError("beam_width", "beam_width must be integer")
        if beam < 1:
            raise RequestError("beam_width", "beam_width must be an integer > 1")
        if len(prompts) > 1:
            raise RequestError("beam_width", "When doing beam_search, batch size must be 1")
        raise RequestError("beam_width", "beam_width: beam search is not supported")
    stop_token = body.get("stop_token")
    if "stop_token" in body and not _is_int(stop_token):
        raise RequestError("stop_token", "stop_token must be an integer")
    if "length_penalty" in body and not isinstance(body["length_penalty"], float):
        raise RequestError("length_penalty", "length_penalty must be a float")
    return ApiRequest(
        prompts=list(prompts),
        tokens_to_generate=tokens,
        logprobs=logprobs,
        temperature=float(temperature),
        top_k=top_k,
        top_p=float(top_p),
        add_BOS=add_bos,
        stop_on_eol=stop_on_eol,
        stop_on_double_eol=stop_on_double_eol,
        prevent_newline_after_colon=prevent_newline,
        random_seed=random_seed,
        stop_token=stop_token,
        no_log=no_log,
    )


def _check_top_p_schedule(body: dict, top_p: float) -> None:
    """`top_p_decay` / `top_p_bound`: checked as the original checks them (its static engine
    never applied them, nor does this one)."""
    if "top_p_decay" in body:
        decay = body["top_p_decay"]
        if not isinstance(decay, float):
            raise RequestError(
                "top_p_decay", "top_p_decay must be a positive float less than or equal to 1.0"
            )
        if top_p == 0.0:
            raise RequestError("top_p_decay", "top_p_decay cannot be set without top_p")
        if not 0 <= decay <= 1.0:
            raise RequestError("top_p_decay", "top_p_decay must be less than or equal to 1.0")
    if "top_p_bound" in body:
        bound = body["top_p_bound"]
        if not isinstance(bound, float):
            raise RequestError(
                "top_p_bound", "top_p_bound must be a positive float less than or equal to top_p"
            )
        if top_p == 0.0:
            raise RequestError("top_p_bound", "top_p_bound cannot be set without top_p")
        if not 0.0 < bound <= top_p:
            raise RequestError(
                "top_p_bound", "top_p_bound must be greater than 0 and less than top_p"
            )
