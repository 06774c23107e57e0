"""Continuous batching over the paged KV memory (the original's `DynamicInferenceEngine`).

Requests arrive at any time (`add_request`) and each `step` advances every running request:
a decoding request feeds its last token, a request still in prefill feeds the next chunk of
its prompt, all within `max_tokens` tokens per step (chunked prefill) and `max_requests`
requests at once. Decoding requests run as one batch; each prefill chunk runs on its own.
A request that needs a new block when none is free is paused: it keeps its blocks and waits;
paused requests resume first (oldest first) as blocks come free, and new requests are admitted
only from the blocks outside the reserved (guaranteed) fraction. If nothing at all can run,
the most recently paused request is evicted: its blocks are freed and it goes back to the
front of the queue with its prompt and generated tokens, to be prefilled again, so no request
is ever lost. Sampling, stopping and log-probs are the static engine's, per request.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from gpt_inference.paged import BlockAllocator, MemoryLayout, OutOfBlocks, PagedKVCache, RowBinding
from gpt_inference.request import GenerationError, InferenceResult, StopRule
from gpt_inference.runner import ModelRunner
from gpt_inference.sampling import SamplingParams, sample, top_n_log_probs
from gpt_inference.static_engine import LogitsFilter, TokenCallback
from gpt_inference.text import detokenize, segments, token_text, tokenize_prompt


@dataclass(frozen=True, kw_only=True)
class DynamicLimits:
    """How much the engine runs at once (from the `--inference-dynamic-batching-*` flags)."""

    buffer_size_gb: float
    block_size: int
    guaranteed_fraction: float = 0.2
    max_requests: int = 8
    max_tokens: int = 2560
    max_sequence_length: int = 2560

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise GenerationError("--inference-dynamic-batching-chunk-size must be positive")
        if self.max_requests <= 0 or self.max_tokens <= 0:
            raise GenerationError("the dynamic engine needs max requests and max tokens > 0")
        if not 0.0 <= self.guaranteed_fraction <= 1.0:
            raise GenerationError(
                "--inference-dynamic-batching-buffer-guaranteed-fraction must be in [0, 1]"
            )


@dataclass(eq=False)
class _Request:
    request_id: int
    prompt: str
    prompt_tokens: list[int]
    params: SamplingParams
    stop: StopRule
    generator: torch.Generator | None
    on_token: TokenCallback | None
    logits_filter: LogitsFilter | None = None
    generated: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    cached: int = 0
    prompt_log_probs: list[float] = field(default_factory=list)
    generated_log_probs: list[float] = field(default_factory=list)
    prompt_top_n: list[dict[str, float]] = field(default_factory=list)
    generated_top_n: list[dict[str, float]] = field(default_factory=list)
    evictions: int = 0

    @property
    def tokens(self) -> list[int]:
        return self.prompt_tokens + self.generated

    @property
    def pending(self) -> int:
        return len(self.tokens) - self.cached


class DynamicInferenceEngine:
    """Runs requests as they come, sharing one paged KV memory."""

    def __init__(self, runner: ModelRunner, tokenizer: Any, limits: DynamicLimits) -> None:
        config = runner.model.config
        self.runner = runner
        self.tokenizer = tokenizer
        self.limits = limits
        self.layout = MemoryLayout.from_buffer(
            limits.buffer_size_gb,
            limits.block_size,
            num_layers=len(runner.model.decoder.layers),
            num_groups=runner.model.decoder.layers[0].self_attention.num_groups,
            head_dim=config.kv_channels,
            dtype=config.params_dtype,
        )
        if self.layout.num_blocks < 1:
            raise GenerationError(
                f"--inference-dynamic-batching-buffer-size-gb {limits.buffer_size_gb}: too small "
                f"for one block of {limits.block_size} tokens"
            )
        reserved = int(limits.guaranteed_fraction * self.layout.num_blocks)
        self.allocator = BlockAllocator(self.layout.num_blocks, reserved)
        self.cache = PagedKVCache(self.layout, runner.device)
        self.learned_positions = config.position_embedding_type == "learned_absolute"
        self.waiting: deque[_Request] = deque()
        self.running: list[_Request] = []
        self.paused: list[_Request] = []
        self._ids = itertools.count()
        self.stats = {"steps": 0, "paused": 0, "evicted": 0, "prefill_chunks": 0, "most_running": 0}

    # ------------------------------------------------------------------ requests
    def add_request(
        self,
        prompt: str | None = None,
        params: SamplingParams | None = None,
        *,
        prompt_tokens: list[int] | None = None,
        add_bos: bool = False,
        stop: StopRule | None = None,
        generator: torch.Generator | None = None,
        on_token: TokenCallback | None = None,
        logits_filter: LogitsFilter | None = None,
    ) -> int:
        """Queue one request; its id. `on_token(id, token)` hears each kept token."""
        params = params or SamplingParams()
        if prompt_tokens is None:
            if prompt is None:
                raise GenerationError("no prompt given")
            prompt_tokens = tokenize_prompt(self.tokenizer, prompt, add_bos)
        if prompt is None:
            prompt = detokenize(self.tokenizer, prompt_tokens)
        if not prompt_tokens:
            raise GenerationError("an empty prompt has no token to start from; set add_BOS")
        self._check_length(len(prompt_tokens), params.num_tokens_to_generate)
        request = _Request(
            next(self._ids),
            prompt,
            list(prompt_tokens),
            params,
            stop or StopRule(frozenset({int(self.tokenizer.eod)})),
            generator,
            on_token,
            logits_filter,
        )
        self.waiting.append(request)
        return request.request_id

    def _check_length(self, prompt_length: int, to_generate: int) -> None:
        total = prompt_length + to_generate
        if total > self.limits.max_sequence_length:
            raise GenerationError(
                f"tokens_to_generate {to_generate}: prompt ({prompt_length} tokens) plus "
                f"generation is {total} tokens, over --inference-max-seq-length "
                f"{self.limits.max_sequence_length}",
                "tokens_to_generate",
            )
        positions = self.runner.max_positions
        if self.learned_positions and positions is not None and total - 1 > positions:
            raise GenerationError(
                f"tokens_to_generate {to_generate}: prompt ({prompt_length} tokens) plus "
                f"generation needs {total - 1} positions, over --max-position-embeddings {positions}",
                "tokens_to_generate",
            )
        if self.layout.blocks_for(total) > self.layout.num_blocks:
            raise GenerationError(
                f"tokens_to_generate {to_generate}: {total} tokens do not fit in the KV memory "
                f"({self.layout.num_blocks} blocks of {self.layout.block_size})",
                "tokens_to_generate",
            )

    def reset(self) -> None:
        """Drop every request and free all memory (after a failed step)."""
        for request in [*self.running, *self.paused]:
            self.allocator.give_back(request.blocks)
            request.blocks = []
        self.waiting.clear()
        self.running, self.paused = [], []

    def has_unfinished_requests(self) -> bool:
        return bool(self.waiting or self.running or self.paused)

    def generate(
        self, prompts: list[str], params: SamplingParams | None = None
    ) -> list[InferenceResult]:
        """All prompts at once, stepped to completion; results in prompt order."""
        ids = [self.add_request(p, params) for p in prompts]
        done: dict[int, InferenceResult] = {}
        while self.has_unfinished_requests():
            done.update(self.step())
        return [done[i] for i in ids]

    # ------------------------------------------------------------------ one step
    @torch.inference_mode()
    def step(self) -> dict[int, InferenceResult]:
        """Advance every request that can run by one step; the requests that finished."""
        self.stats["steps"] += 1
        decode, chunks = self._schedule()
        if not decode and not chunks:
            if self.paused:
                self._evict(self.paused.pop())
            return {}
        finished: dict[int, InferenceResult] = {}
        if decode:
            self._run(decode, 1, finished)
        for request, count in chunks:
            self.stats["prefill_chunks"] += 1
            self._run([request], count, finished)
        return finished

    def _schedule(self) -> tuple[list[_Request], list[tuple[_Request, int]]]:
        """Which requests run this step and how many tokens each feeds (pausing those that
        cannot get a block, resuming paused ones first, then admitting new ones)."""
        budget = self.limits.max_tokens
        decode: list[_Request] = []
        chunks: list[tuple[_Request, int]] = []
        candidates = self.paused + self.running
        self.paused, self.running = [], []
        for request in candidates:
            take = min(request.pending, budget)
            if take == 0:  # this step's token budget is spent
                self.running.append(request)
                continue
            if not self._grow(request, take, new=False):
                self.stats["paused"] += 1
                self.paused.append(request)
                continue
            self.running.append(request)
            budget -= take
            self._place(request, take, decode, chunks)
        while self.waiting and not self.paused and budget > 0:
            if len(self.running) >= self.limits.max_requests:
                break
            request = self.waiting[0]
            take = min(request.pending, budget)
            if not self._grow(request, take, new=True):
                break
            self.waiting.popleft()
            self.running.append(request)
            budget -= take
            self._place(request, take, decode, chunks)
        self.stats["most_running"] = max(self.stats["most_running"], len(self.running))
        return decode, chunks

    @staticmethod
    def _place(
        request: _Request,
        take: int,
        decode: list[_Request],
        chunks: list[tuple[_Request, int]],
    ) -> None:
        if request.generated and request.pending == 1:
            decode.append(request)
        else:
            chunks.append((request, take))

    def _grow(self, request: _Request, take: int, *, new: bool) -> bool:
        need = self.layout.blocks_for(request.cached + take) - len(request.blocks)
        if need <= 0:
            return True
        try:
            request.blocks += self.allocator.take(need, for_new_request=new)
        except OutOfBlocks:
            return False
        return True

    def _evict(self, request: _Request) -> None:
        """Free a paused request's memory; it is prefilled again (prompt + generated) later."""
        self.stats["evicted"] += 1
        self.allocator.give_back(request.blocks)
        request.blocks, request.cached = [], 0
        request.evictions += 1
        self.waiting.appendleft(request)

    def _run(self, rows: list[_Request], count: int, finished: dict[int, InferenceResult]) -> None:
        device = self.runner.device
        ids = torch.tensor([r.tokens[r.cached : r.cached + count] for r in rows], device=device)
        starts = torch.tensor([r.cached for r in rows], device=device)
        positions = starts[:, None] + torch.arange(count, device=device)[None]
        self.cache.bind([RowBinding(r.blocks, r.cached) for r in rows])
        logits = self.runner.logits(ids, positions, self.cache)
        for row, request in enumerate(rows):
            self._score_prompt(request, logits[row], count)
            request.cached += count
            if request.pending == 0:
                self._next_token(request, logits[row, -1], finished)

    def _score_prompt(self, request: _Request, logits: torch.Tensor, count: int) -> None:
        """Prompt log-probs (and top-n) for the positions of this chunk inside the prompt
        that were not scored before (an evicted request's re-prefill scores nothing twice)."""
        params = request.params
        want_top_n = params.top_n_logprobs > 0 and params.return_prompt_top_n_logprobs
        if not (params.return_log_probs or want_top_n):
            return
        last_prompt_pos = len(request.prompt_tokens) - 1
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        for pos in range(request.cached, min(request.cached + count, last_prompt_pos)):
            row = pos - request.cached
            target = request.prompt_tokens[pos + 1]
            if params.return_log_probs and pos == len(request.prompt_log_probs):
                request.prompt_log_probs.append(float(log_probs[row, target]))
            if want_top_n and pos == len(request.prompt_top_n):
                request.prompt_top_n.append(self._top_n(logits[row], params.top_n_logprobs))

    def _next_token(
        self, request: _Request, logits: torch.Tensor, finished: dict[int, InferenceResult]
    ) -> None:
        params = request.params
        if len(request.generated) >= params.num_tokens_to_generate:
            self._finish(request, finished)  # scoring only
            return
        row = logits[None]
        if request.logits_filter is not None:
            row = row.clone()
            previous = torch.tensor([request.tokens[-1]], device=row.device)
            request.logits_filter(previous, row)
        vocab = self.runner.padded_vocab_size
        token = int(sample(row, params, vocab, request.generator)[0])
        if token in request.stop.termination_ids:
            self._finish(request, finished)
            return
        request.generated.append(token)
        if params.return_log_probs:
            request.generated_log_probs.append(float(torch.log_softmax(logits.float(), -1)[token]))
        if params.top_n_logprobs > 0:
            request.generated_top_n.append(self._top_n(logits, params.top_n_logprobs))
        if request.on_token is not None:
            request.on_token(request.request_id, token)
        end_after = request.stop.end_after
        if len(request.generated) >= params.num_tokens_to_generate or (
            end_after is not None and end_after(request.generated)
        ):
            self._finish(request, finished)

    def _top_n(self, logits: torch.Tensor, n: int) -> dict[str, float]:
        values, indices = top_n_log_probs(logits, n)
        return {
            token_text(self.tokenizer, int(i)): float(v)
            for v, i in zip(values.tolist(), indices.tolist())
        }

    def _finish(self, request: _Request, finished: dict[int, InferenceResult]) -> None:
        self.running.remove(request)
        self.allocator.give_back(request.blocks)
        request.blocks = []
        params = request.params
        text = detokenize(self.tokenizer, request.tokens)
        result = InferenceResult(
            prompt=request.prompt,
            prompt_tokens=list(request.prompt_tokens),
            generated_tokens=list(request.generated),
            generated_length=len(request.generated),
            generated_text=text[len(request.prompt) :],
            text=text,
        )
        if params.return_log_probs:
            result.prompt_log_probs = request.prompt_log_probs
            result.generated_log_probs = request.generated_log_probs
        if params.top_n_logprobs > 0:
            if params.return_prompt_top_n_logprobs:
                result.prompt_top_n_logprobs = request.prompt_top_n
            result.generated_top_n_logprobs = request.generated_top_n
        if params.return_segments:
            result.segments = segments(self.tokenizer, request.tokens)
        result.extra["evictions"] = request.evictions
        finished[request.request_id] = result
