"""The original's `StaticInferenceEngine` + `TextGenerationController` static-batch loop.

A batch of prompts of different lengths is padded with end-of-document ids to
`longest + num_tokens_to_generate`. The first step prefills every row up to the shortest prompt;
each later step feeds one position for all rows through the KV cache and samples one token per
row. A row whose prompt is longer than the current position keeps its prompt token (the sample
is dropped); a row stops at a termination id (end-of-document), which is not part of its
output. `num_tokens_to_generate=0` runs one forward step over the whole prompts and only scores
them. Log-probs are `log_softmax` of the logits at each position, gathered at the next token.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gpt_inference.kv_cache import StaticKVCache
from gpt_inference.request import GenerationError, InferenceResult, StopRule
from gpt_inference.runner import ModelRunner
from gpt_inference.sampling import SamplingParams, sample, top_n_log_probs
from gpt_inference.text import detokenize, segments, token_text, tokenize_prompt

LogitsFilter = Callable[[torch.Tensor, torch.Tensor], None]
TokenCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class _Hooks:
    stop: StopRule
    generator: torch.Generator | None
    logits_filter: LogitsFilter | None
    on_token: TokenCallback | None
    offset: int  # index of the batch's first prompt among all prompts


class StaticInferenceEngine:
    """Generates for batches of at most `max_batch_size` prompts, one batch at a time."""

    def __init__(
        self,
        runner: ModelRunner,
        tokenizer: Any,
        *,
        max_batch_size: int = 8,
        max_sequence_length: int = 2560,
        random_seed: int | None = None,
        max_tokens_to_oom: int | None = None,
    ) -> None:
        self.runner = runner
        self.max_tokens_to_oom = max_tokens_to_oom
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_sequence_length = max_sequence_length
        self.random_seed = random_seed
        self.learned_positions = runner.model.config.position_embedding_type == "learned_absolute"

    def generate(
        self,
        prompts: Sequence[str] | None = None,
        sampling_params: SamplingParams | None = None,
        *,
        prompt_tokens: Sequence[Sequence[int]] | None = None,
        add_bos: bool = False,
        stop: StopRule | None = None,
        generator: torch.Generator | None = None,
        logits_filter: LogitsFilter | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[InferenceResult]:
        """One result per prompt, in order. Prompts are strings, or already tokenized
        (`prompt_tokens`, then `prompts` are their texts). `generator` draws the samples;
        without one, an engine `random_seed` seeds a fresh generator per call as the original
        seeds torch's before generating, else torch's default generator draws.
        `logits_filter(previous_ids [b], logits [b, V])` may mask logits in place before each
        draw; `on_token(index, token_id)` hears each generated token as it is kept."""
        params = sampling_params or SamplingParams()
        if prompt_tokens is None:
            if prompts is None:
                raise GenerationError("no prompts given")
            prompt_tokens = [tokenize_prompt(self.tokenizer, p, add_bos) for p in prompts]
        else:
            prompt_tokens = [list(map(int, t)) for t in prompt_tokens]
            if prompts is None:
                prompts = [detokenize(self.tokenizer, t) for t in prompt_tokens]
        if any(len(t) == 0 for t in prompt_tokens):
            raise GenerationError("an empty prompt has no token to start from; set add_BOS")
        if generator is None and self.random_seed:
            generator = torch.Generator(self.runner.device).manual_seed(self.random_seed)
        stop = stop or StopRule(frozenset({int(self.tokenizer.eod)}))
        results: list[InferenceResult] = []
        for first in range(0, len(prompt_tokens), self.max_batch_size):
            last = first + self.max_batch_size
            results += self._generate_batch(
                list(prompts[first:last]),
                prompt_tokens[first:last],
                params,
                _Hooks(stop, generator, logits_filter, on_token, first),
            )
        return results

    def check_length(
        self, longest_prompt: int, num_tokens_to_generate: int, batch_size: int = 1
    ) -> None:
        """Refuse, before any work, a batch the KV cache or the position table cannot hold,
        or one over `--max-tokens-to-oom` tokens (batch size x padded length)."""
        total = longest_prompt + num_tokens_to_generate
        if self.max_tokens_to_oom is not None and total * batch_size > self.max_tokens_to_oom:
            raise GenerationError(
                f"tokens_to_generate {num_tokens_to_generate}: {batch_size} prompts x {total} "
                f"tokens is over --max-tokens-to-oom {self.max_tokens_to_oom}",
                "tokens_to_generate",
            )
        if total > self.max_sequence_length:
            raise GenerationError(
                f"tokens_to_generate {num_tokens_to_generate}: prompt ({longest_prompt} tokens) "
                f"plus generation is {total} tokens, over --inference-max-seq-length "
                f"{self.max_sequence_length}",
                "tokens_to_generate",
            )
        positions = self.runner.max_positions
        if self.learned_positions and positions is not None and total - 1 > positions:
            raise GenerationError(
                f"tokens_to_generate {num_tokens_to_generate}: prompt ({longest_prompt} tokens) "
                f"plus generation needs {total - 1} positions, over --max-position-embeddings "
                f"{positions}",
                "tokens_to_generate",
            )

    def _generate_batch(
        self,
        prompts: list[str],
        prompt_tokens: list[list[int]],
        params: SamplingParams,
        hooks: _Hooks,
    ) -> list[InferenceResult]:
        stop = hooks.stop
        device = self.runner.device
        n = params.num_tokens_to_generate
        b = len(prompt_tokens)
        lengths = torch.tensor([len(t) for t in prompt_tokens], device=device)
        longest, shortest = int(lengths.max()), int(lengths.min())
        self.check_length(longest, n, b)
        total = longest + n
        eod = int(self.tokenizer.eod)
        tokens = torch.full((b, total), eod, dtype=torch.long, device=device)
        for row, ids in enumerate(prompt_tokens):
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        vocab_size = self.runner.padded_vocab_size
        cache = StaticKVCache(total)
        log_probs = (
            torch.empty((b, total - 1), dtype=torch.float32, device=device)
            if params.return_log_probs
            else None
        )
        top_n: dict[int, list[dict[str, float]]] = defaultdict(list)
        done = torch.zeros(b, dtype=torch.bool, device=device)
        generated = torch.zeros(b, dtype=torch.long, device=device)
        termination = torch.tensor(sorted(stop.termination_ids), device=device)

        start, end = 0, (longest if n == 0 else shortest)
        while True:
            cache.start = start
            positions = torch.arange(start, end, device=device).expand(b, -1)
            logits = self.runner.logits(tokens[:, start:end], positions, cache)
            started = lengths <= end
            if params.top_n_logprobs > 0:
                prompt_logits = start == 0 and params.return_prompt_top_n_logprobs
                self._collect_top_n(logits, params, started, top_n, whole=prompt_logits)
            last_logits = logits[:, -1, :]
            if hooks.logits_filter is not None:
                last_logits = last_logits.clone()
                hooks.logits_filter(tokens[:, end - 1], last_logits)
            samples = sample(last_logits, params, vocab_size, hooks.generator)
            if n > 0:
                tokens[started, end] = samples[started]
            if log_probs is not None:
                width = min(end + 1, total) - (start + 1)
                scores = torch.log_softmax(logits[:, :width].float(), dim=2)
                next_ids = tokens[:, start + 1 : start + 1 + width].unsqueeze(2)
                log_probs[:, start : start + width] = torch.gather(scores, 2, next_ids).squeeze(2)
            start = end
            if n > 0:
                latest = tokens[:, end]
                done |= torch.isin(latest, termination) & started
                kept = ~done & started
                generated += kept.long()
                if hooks.on_token is not None:
                    for row in torch.nonzero(kept & (generated <= n)).flatten().tolist():
                        hooks.on_token(hooks.offset + row, int(tokens[row, end]))
                if stop.end_after is not None:
                    done |= self._ended_after(tokens, lengths, generated, started & ~done, stop)
            if bool(done.all()):
                break
            end = start + 1
            if end >= total:
                break

        with_generations = tokens[:, : end + 1].tolist()
        generated = generated.clamp(max=n)
        lp = None if log_probs is None else log_probs[:, :end].tolist()
        results = []
        for row in range(b):
            length = int(lengths[row])
            count = int(generated[row])
            row_ids = with_generations[row][: length + count]
            text = detokenize(self.tokenizer, row_ids)
            result = InferenceResult(
                prompt=prompts[row],
                prompt_tokens=list(prompt_tokens[row]),
                generated_tokens=row_ids[length:],
                generated_length=count,
                generated_text=text[len(prompts[row]) :],
                text=text,
            )
            if lp is not None:
                result.prompt_log_probs = lp[row][: length - 1]
                result.generated_log_probs = lp[row][length - 1 : length - 1 + count]
            if params.top_n_logprobs > 0:
                entries = top_n[row]
                if params.return_prompt_top_n_logprobs:
                    result.prompt_top_n_logprobs = entries[: length - 1]
                    result.generated_top_n_logprobs = entries[length - 1 : length - 1 + count]
                else:
                    result.generated_top_n_logprobs = entries[:count]
            if params.return_segments:
                # As the original, each row's segments stop at its prompt length plus the
                # *first* row's generated length (it zips every row with that one length).
                result.segments = segments(self.tokenizer, row_ids[: length + int(generated[0])])
            results.append(result)
        return results

    def _ended_after(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        generated: torch.Tensor,
        active: torch.Tensor,
        stop: StopRule,
    ) -> torch.Tensor:
        ended = torch.zeros_like(active)
        assert stop.end_after is not None
        for row in torch.nonzero(active).flatten().tolist():
            first = int(lengths[row])
            ids = tokens[row, first : first + int(generated[row])].tolist()
            ended[row] = bool(ids) and stop.end_after(ids)
        return ended

    def _collect_top_n(
        self,
        logits: torch.Tensor,
        params: SamplingParams,
        started: torch.Tensor,
        top_n: dict[int, list[dict[str, float]]],
        *,
        whole: bool,
    ) -> None:
        """The n most likely tokens (text -> log-prob) at each position, per row: every
        position of the prefill when prompt top-n is asked for, else the last position of the
        rows that are generating (all rows with prompt top-n)."""
        if whole:
            values, indices = top_n_log_probs(logits, params.top_n_logprobs)
            rows = range(logits.shape[0])
            for pos in range(logits.shape[1]):
                for row in rows:
                    top_n[row].append(self._entry(values[row, pos], indices[row, pos]))
            return
        values, indices = top_n_log_probs(logits[:, -1, :], params.top_n_logprobs)
        for row in range(logits.shape[0]):
            if params.return_prompt_top_n_logprobs or bool(started[row]):
                top_n[row].append(self._entry(values[row], indices[row]))

    def _entry(self, values: torch.Tensor, indices: torch.Tensor) -> dict[str, float]:
        return {
            token_text(self.tokenizer, int(i)): float(v)
            for v, i in zip(values.tolist(), indices.tolist())
        }
