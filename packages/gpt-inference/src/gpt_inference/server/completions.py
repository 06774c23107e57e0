"""`POST /completions`: the original's OpenAI-like endpoint.

The answer is built exactly as the original builds it, including its truncation: the token
range is found by searching the token offsets for the *length* of the truncated text (not its
end), so without `echo` the logprobs and tokens cover the first part of the generation only.
`seed` seeds the draws (the original ignored it); `"stream": true` answers with server-sent
events, one per generated token, then `data: [DONE]`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from gpt_inference.server.errors import RequestError
from gpt_inference.text import detokenize, token_text


@dataclass(frozen=True)
class CompletionRequest:
    prompts: list[str]
    prompt_tokens: list[list[int]] | None
    max_tokens: int
    temperature: float
    top_k: int
    top_p: float
    logprobs: int
    echo: bool
    seed: int
    stop: list[str]
    stream: bool


def _number(body: dict, name: str, default: Any, kind: type) -> Any:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(name, f"{name} must be a number")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise RequestError(name, f"{name} must be an integer")
        return int(value)
    return float(value)


def _prompts(body: dict, tokenizer: Any) -> tuple[list[str], list[list[int]] | None]:
    if "prompt" not in body:
        raise RequestError("prompt", "prompt is required")
    prompt = body["prompt"]
    if isinstance(prompt, str):
        return [prompt], None
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt), None
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return [detokenize(tokenizer, prompt)], [list(prompt)]
        if all(isinstance(p, list) and p and all(isinstance(i, int) for i in p) for p in prompt):
            return [detokenize(tokenizer, p) for p in prompt], [list(p) for p in prompt]
    if isinstance(prompt, list) and not prompt:
        raise RequestError("prompt", f"prompt contains no items: {prompt}")
    raise RequestError("prompt", f"Unknown prompt type: {type(prompt).__name__}")


def parse_completion_request(body: Any, tokenizer: Any) -> CompletionRequest:
    if not isinstance(body, dict):
        raise RequestError("prompt", "the request body must be a JSON object with a prompt")
    prompts, prompt_tokens = _prompts(body, tokenizer)
    if "max_tokens" not in body:
        raise RequestError("max_tokens", "max_tokens is required")
    max_tokens = _number(body, "max_tokens", 0, int)
    if max_tokens < 0:
        raise RequestError("max_tokens", "max_tokens must be >= 0")
    temperature = _number(body, "temperature", 1.0, float)
    top_k = _number(body, "top_k", 0, int)
    top_p = _number(body, "top_p", 1.0, float)
    if temperature == 0:
        top_k, top_p, temperature = 1, 0.0, 1.0  # OpenAI's greedy
    logprobs = _number(body, "logprobs", 0, int)
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise RequestError("echo", "echo must be a boolean value")
    seed = _number(body, "seed", -1, int)
    stop = body.get("stop", [detokenize(tokenizer, [int(tokenizer.eod)])])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("stop", "stop must be a string or a list of strings")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream", "stream must be a boolean value")
    if not echo and max_tokens == 0:
        raise RequestError("echo", "echo=False not supported when tokens_to_generate == 0")
    if _number(body, "best_of", 1, int) > 1:
        raise RequestError("best_of", "best_of > 1 not supported")
    if _number(body, "n", 1, int) > 1:
        raise RequestError("n", "num_completions > 1 not supported")
    if max_tokens > 0 and logprobs > 0:
        raise RequestError(
            "logprobs", "cannot return top-k unless tokens_to_generate=0 at this time"
        )
    if logprobs > 10:
        raise RequestError("logprobs", "return_topk_logprobs > 10 not supported")
    if not 0.0 < temperature <= 100.0:
        raise RequestError("temperature", "temperature must be a positive number <= 100.0")
    if top_k < 0 or top_p < 0.0 or top_p > 1.0:
        raise RequestError("top_k" if top_k < 0 else "top_p", "top_k/top_p out of range")
    if top_k > 0 and top_p > 0.0:
        raise RequestError("top_p", "cannot set both top-k and top-p samplings.")
    return CompletionRequest(
        prompts=prompts,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        logprobs=logprobs,
        echo=echo,
        seed=seed,
        stop=stop,
        stream=stream,
    )


def completion_choices(
    request: CompletionRequest, response: dict[str, Any], tokenizer: Any
) -> list[dict[str, Any]]:
    """The original's `choices` from a `run_mcore_engine` answer."""
    choices = []
    top = response.get("top_n_logprobs")
    for index, (text, prompt) in enumerate(zip(response["text"], request.prompts)):
        tokens = response["tokens"][index]
        offsets = _offsets(tokenizer, tokens, text)
        if request.echo:
            text_start, token_start = 0, 0
        else:
            text_start = len(prompt)
            token_start = bisect_left(offsets, len(prompt))
        cuts = [text.find(s, text_start) for s in request.stop if s and s in text]
        text_end = min((c for c in cuts if c != -1), default=len(text))
        truncated = text[text_start:text_end]
        token_end = bisect_left(offsets, len(truncated))  # the original's (length, not end)
        log_probs = response["logprobs"][index][token_start:token_end]
        kept = tokens[token_start:token_end]
        choices.append(
            {
                "index": index,
                "text": truncated,
                "logprobs": {
                    "token_logprobs": [None, *log_probs],
                    "tokens": [token_text(tokenizer, t) for t in kept],
                    "text_offset": offsets[token_start:token_end],
                    "top_logprobs": (
                        None if top is None else [None, *top[index][token_start:token_end]]
                    ),
                },
            }
        )
    return choices


def _offsets(tokenizer: Any, tokens: list[int], text: str) -> list[int]:
    try:
        return list(tokenizer.offsets(tokens, text))
    except NotImplementedError:
        return [len(detokenize(tokenizer, tokens[:i])) for i in range(len(tokens))]
