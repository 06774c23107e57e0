"""What the endpoints share: one engine, one generation at a time, and the original's
`run_mcore_engine` answer (`text`, `tokens`, `logprobs`, `segments`, `top_n_logprobs`)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch

from gpt_inference.batcher import DynamicBatcher
from gpt_inference.dynamic_engine import DynamicInferenceEngine
from gpt_inference.request import GenerationError, InferenceResult, StopRule
from gpt_inference.sampling import SamplingError, SamplingParams
from gpt_inference.server.api_request import ApiRequest
from gpt_inference.server.errors import RequestError
from gpt_inference.static_engine import LogitsFilter, StaticInferenceEngine, TokenCallback
from gpt_inference.text import detokenize, token_text, tokenize_prompt


class TokenClasses:
    """Which ids end a line or are a colon, found once by detokenizing the vocabulary."""

    def __init__(self, tokenizer: Any) -> None:
        texts = [token_text(tokenizer, i) for i in range(tokenizer.vocab_size)]
        self.newline_ids = [i for i, t in enumerate(texts) if "\n" in t]
        self.colon_ids = [i for i, t in enumerate(texts) if t.rstrip(" ").endswith(":")]


class GenerationService:
    """Runs requests on the static engine, one call at a time (the original's global lock),
    or, with a `DynamicBatcher`, on the dynamic engine, where calls of concurrent clients
    share its steps."""

    def __init__(
        self, engine: StaticInferenceEngine, batcher: DynamicBatcher | None = None
    ) -> None:
        self.engine = engine
        self.batcher = batcher
        self.tokenizer = engine.tokenizer
        self.lock = threading.Lock()
        self._classes: TokenClasses | None = None

    def classes(self) -> TokenClasses:
        if self._classes is None:
            self._classes = TokenClasses(self.tokenizer)
        return self._classes

    def tokenize(self, prompts: Sequence[str], add_bos: bool) -> list[list[int]]:
        return [tokenize_prompt(self.tokenizer, p, add_bos) for p in prompts]

    def generate(
        self,
        prompt_tokens: list[list[int]],
        params: SamplingParams,
        *,
        random_seed: int = -1,
        stop: StopRule | None = None,
        logits_filter: LogitsFilter | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[InferenceResult]:
        """The engine's results; the prompts are the detokenized ids, as the original's server
        passes them."""
        device = self.engine.runner.device
        generator = torch.Generator(device).manual_seed(random_seed) if random_seed >= 0 else None
        prompts = [detokenize(self.tokenizer, t) for t in prompt_tokens]
        if self.batcher is not None:
            return self._generate_dynamic(
                prompts, prompt_tokens, params, generator, stop, logits_filter, on_token
            )
        with self.lock:
            return self.engine.generate(
                prompts,
                params,
                prompt_tokens=prompt_tokens,
                stop=stop,
                generator=generator,
                logits_filter=logits_filter,
                on_token=on_token,
            )

    def _generate_dynamic(
        self,
        prompts: list[str],
        prompt_tokens: list[list[int]],
        params: SamplingParams,
        generator: torch.Generator | None,
        stop: StopRule | None,
        logits_filter: LogitsFilter | None,
        on_token: TokenCallback | None,
    ) -> list[InferenceResult]:
        assert self.batcher is not None
        index_of: dict[int, int] = {}

        def heard(request_id: int, token: int) -> None:
            if on_token is not None:
                on_token(index_of[request_id], token)

        def submit(engine: DynamicInferenceEngine) -> list[int]:
            ids = []
            for prompt, tokens in zip(prompts, prompt_tokens):
                ids.append(
                    engine.add_request(
                        prompt,
                        params,
                        prompt_tokens=tokens,
                        stop=stop,
                        generator=generator,
                        on_token=heard,
                        logits_filter=logits_filter,
                    )
                )
            index_of.update({request_id: i for i, request_id in enumerate(ids)})
            return ids

        return self.batcher.run(submit)

    def stop_rule(self, request: ApiRequest) -> StopRule:
        ids = {int(self.tokenizer.eod)}
        if request.stop_token is not None:
            ids.add(int(request.stop_token))
        end_after = None
        if request.stop_on_eol or request.stop_on_double_eol:
            tokenizer, single = self.tokenizer, request.stop_on_eol

            def end_after(generated: Sequence[int]) -> bool:
                if single:
                    return "\n" in token_text(tokenizer, generated[-1])
                return detokenize(tokenizer, generated).endswith("\n\n")

        return StopRule(frozenset(ids), end_after)

    def newline_after_colon_filter(self) -> LogitsFilter:
        classes = self.classes()
        colon = torch.tensor(classes.colon_ids, dtype=torch.long)
        newline = torch.tensor(classes.newline_ids, dtype=torch.long)

        def forbid(previous: torch.Tensor, logits: torch.Tensor) -> None:
            rows = torch.isin(previous, colon.to(previous.device))
            if rows.any() and newline.numel():
                index = newline.to(logits.device)
                logits[rows.nonzero().flatten()[:, None], index[None, :]] = float("-inf")

        return forbid

    def run_api(self, request: ApiRequest) -> dict[str, Any]:
        """`PUT /api`: the original's `run_mcore_engine` answer."""
        params = sampling_params(
            temperature=request.temperature,
            top_k=request.top_k,
            top_p=request.top_p,
            logprobs=request.logprobs,
            tokens_to_generate=request.tokens_to_generate,
        )
        tokens = self.run_checked(lambda: self.tokenize(request.prompts, request.add_BOS))
        results = self.run_checked(
            lambda: self.generate(
                tokens,
                params,
                random_seed=request.random_seed,
                stop=self.stop_rule(request),
                logits_filter=(
                    self.newline_after_colon_filter()
                    if request.prevent_newline_after_colon
                    else None
                ),
            )
        )
        return api_response(results, params)

    @staticmethod
    def run_checked(work: Any) -> Any:
        """Run `work`; a request the engine refuses becomes a 400 naming its field."""
        try:
            return work()
        except GenerationError as err:
            raise RequestError(err.field, str(err)) from None
        except SamplingError as err:
            raise RequestError("sampling", str(err)) from None


def sampling_params(
    *,
    temperature: float,
    top_k: int,
    top_p: float,
    logprobs: bool,
    tokens_to_generate: int,
    top_n_logprobs: int = 0,
) -> SamplingParams:
    """The server's sampling parameters, as the original's `run_mcore_engine` builds them."""
    try:
        return SamplingParams(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            return_segments=True,
            return_log_probs=logprobs,
            num_tokens_to_generate=tokens_to_generate,
            top_n_logprobs=top_n_logprobs,
            return_prompt_top_n_logprobs=True,
        )
    except SamplingError as err:
        raise RequestError("sampling", str(err)) from None


def api_response(results: list[InferenceResult], params: SamplingParams) -> dict[str, Any]:
    response: dict[str, Any] = {
        "text": [r.prompt + r.generated_text for r in results],
        "tokens": [r.prompt_tokens + r.generated_tokens for r in results],
    }
    if params.return_log_probs:
        response["logprobs"] = [
            (r.prompt_log_probs or []) + (r.generated_log_probs or []) for r in results
        ]
    if params.return_segments:
        response["segments"] = [r.segments for r in results]
    if params.top_n_logprobs > 0:
        response["top_n_logprobs"] = [
            (r.prompt_top_n_logprobs or []) + (r.generated_top_n_logprobs or []) for r in results
        ]
    return response
