"""The dynamic engine (continuous batching over paged KV memory) generates what the static
engine generates, whatever the arrival order, the memory and the per-step token budget."""

from __future__ import annotations

import itertools

import pytest
from gpt_inference.dynamic_engine import DynamicInferenceEngine, DynamicLimits
from gpt_inference.sampling import SamplingParams

from tests.conftest import require_shared_dir
from tests.gpt_inference.golden_runs import assert_close_lists, generation_for

GOLDEN = require_shared_dir() / "reference" / "golden"
PROMPTS = ["5 17 230 4", "99 3", "1 2 3 4 5 6 7 8", "7 7 7", "300 301 302 303 304 305", "42"]
GREEDY = SamplingParams(top_k=1, num_tokens_to_generate=10, return_log_probs=True)
#: One KV block of 4 tokens holds 4 KiB for this model (2 layers, 4 groups of 16, fp32).
BLOCK_BYTES = 4096


@pytest.fixture(scope="module")
def generation():
    return generation_for(GOLDEN, "gpt-infer-null.json")


@pytest.fixture(scope="module")
def static_results(generation):
    return {r.prompt: r for r in generation.engine.generate(PROMPTS, GREEDY)}


def engine(generation, blocks: int = 200, **limits) -> DynamicInferenceEngine:
    gb = blocks * BLOCK_BYTES / 1024**3
    return DynamicInferenceEngine(
        generation.engine.runner,
        generation.tokenizer,
        DynamicLimits(buffer_size_gb=gb, block_size=4, **limits),
    )


def assert_same_as_static(results, static_results):
    for result in results:
        expected = static_results[result.prompt]
        assert result.generated_tokens == expected.generated_tokens, result.prompt
        assert_close_lists(result.prompt_log_probs, expected.prompt_log_probs, result.prompt)
        assert_close_lists(result.generated_log_probs, expected.generated_log_probs, result.prompt)


def test_the_buffer_is_cut_into_blocks_of_the_chunk_size(generation):
    dynamic = engine(generation, blocks=7)
    assert dynamic.layout.num_blocks == 7 and dynamic.layout.block_size == 4


@pytest.mark.parametrize(
    "order", list(itertools.islice(itertools.permutations(range(6)), 0, 720, 240))
)
def test_same_greedy_tokens_as_the_static_engine_whatever_the_arrival_order(
    generation, static_results, order
):
    dynamic = engine(generation)
    prompts = [PROMPTS[i] for i in order]
    ids, done = [], {}
    for prompt in prompts[:3]:
        ids.append(dynamic.add_request(prompt, GREEDY))
    for _ in range(3):  # the others arrive while the first ones decode
        done.update(dynamic.step())
    for prompt in prompts[3:]:
        ids.append(dynamic.add_request(prompt, GREEDY))
    while dynamic.has_unfinished_requests():
        done.update(dynamic.step())
    assert sorted(done) == sorted(ids)
    assert_same_as_static([done[i] for i in ids], static_results)


def test_chunked_prefill_splits_long_prompts_over_steps(generation, static_results):
    dynamic = engine(generation, max_tokens=3)
    results = dynamic.generate(PROMPTS, GREEDY)
    assert dynamic.stats["prefill_chunks"] > len(PROMPTS)
    assert_same_as_static(results, static_results)


def test_requests_pause_when_memory_runs_out_and_nothing_is_lost(generation, static_results):
    dynamic = engine(generation, blocks=9, max_requests=6)
    results = dynamic.generate(PROMPTS, GREEDY)
    assert dynamic.stats["paused"] > 0
    assert len(results) == len(PROMPTS)
    assert_same_as_static(results, static_results)
    assert len(dynamic.allocator.free) == dynamic.layout.num_blocks  # every block came back


def test_with_memory_for_one_request_paused_ones_are_evicted_and_recomputed(
    generation, static_results
):
    dynamic = engine(generation, blocks=5, max_requests=6, guaranteed_fraction=0.0)
    results = dynamic.generate(PROMPTS, GREEDY)
    assert dynamic.stats["evicted"] > 0
    assert_same_as_static(results, static_results)


def test_a_request_that_can_never_fit_is_refused_when_added(generation):
    dynamic = engine(generation, blocks=2)
    with pytest.raises(ValueError, match="do not fit in the KV memory"):
        dynamic.add_request("5 17", SamplingParams(top_k=1, num_tokens_to_generate=10))
