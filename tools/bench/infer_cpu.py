"""Generation speed on the CPU: our engines against HF transformers' `generate` on the same
weights.

A randomly initialised `LlamaForCausalLM` is converted to our GPTModel (gpt_models.hf_mapping),
so both sides compute the same function. Measured, greedy, every prompt `--prompt-tokens` long
and generating exactly `--new-tokens` (no early stop):
- static engine vs HF `generate` for each batch size in `--batch-sizes` (tokens/s counts the
  generated tokens; the time includes the prefill, as a user sees it);
- the dynamic engine with `--concurrent` requests at once vs the same requests one by one.

    uv run --frozen python tools/bench/infer_cpu.py
    uv run --frozen python tools/bench/infer_cpu.py --batch-sizes 1 --new-tokens 16 --concurrent 4
"""

from __future__ import annotations

import argparse
import time

import torch
from gpt_inference.dynamic_engine import DynamicInferenceEngine, DynamicLimits
from gpt_inference.request import StopRule
from gpt_inference.runner import ModelRunner
from gpt_inference.sampling import SamplingParams
from gpt_inference.static_engine import StaticInferenceEngine
from gpt_models.hf_mapping import hf_to_gpt_state_dict, transformer_config_from_hf
from gpt_models.model import GPTModel
from gpt_tokenizers.null import NullTokenizer


def build(args: argparse.Namespace):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    hf_config = LlamaConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=args.hidden_size * 8 // 3 // 64 * 64 or 64,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        num_key_value_heads=args.num_heads,
        max_position_embeddings=args.prompt_tokens + args.new_tokens,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    hf = LlamaForCausalLM(hf_config).eval()
    config = transformer_config_from_hf(hf_config, hidden_dropout=0.0, attention_dropout=0.0)
    ours = GPTModel(config).eval()
    ours.load_state_dict(hf_to_gpt_state_dict(hf.state_dict(), hf_config, config), strict=False)
    return hf, ours


def prompts(count: int, length: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, vocab - 1, (count, length), generator=g).tolist()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-heads", type=int, default=8)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--concurrent", type=int, default=32)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    hf, ours = build(args)
    tokenizer = NullTokenizer(args.vocab_size - 1)
    n = args.new_tokens
    params = SamplingParams(top_k=1, num_tokens_to_generate=n)
    never = StopRule(frozenset())
    total = args.prompt_tokens + n
    static = StaticInferenceEngine(
        ModelRunner(ours),
        tokenizer,
        max_batch_size=max(args.batch_sizes),
        max_sequence_length=total,
    )
    print(
        f"model: Llama {args.num_layers}x{args.hidden_size}, vocab {args.vocab_size}, "
        f"{torch.get_num_threads()} threads; prompt {args.prompt_tokens} + {n} new tokens"
    )
    for b in args.batch_sizes:
        batch = prompts(b, args.prompt_tokens, args.vocab_size)
        ids = torch.tensor(batch)
        outputs: dict[str, list] = {}

        def run_ours(batch=batch, outputs=outputs) -> None:
            results = static.generate(prompt_tokens=batch, sampling_params=params, stop=never)
            outputs["ours"] = [r.generated_tokens for r in results]

        def run_hf(ids=ids, outputs=outputs) -> None:
            out = hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=0,
            )
            outputs["hf"] = out[:, args.prompt_tokens :].tolist()

        run_ours(), run_hf()  # warm-up: first-call costs are not decode speed
        ours_s, hf_s = timed(run_ours), timed(run_hf)
        same = outputs["ours"] == outputs["hf"]
        print(
            f"batch {b:3d}: static engine {b * n / ours_s:8.1f} tok/s   "
            f"HF generate {b * n / hf_s:8.1f} tok/s   (ours / HF {hf_s / ours_s:.2f}x, "
            f"same tokens: {'yes' if same else 'no'})"
        )
    requests = prompts(args.concurrent, args.prompt_tokens, args.vocab_size)
    limits = DynamicLimits(
        buffer_size_gb=1.0,
        block_size=64,
        max_requests=args.concurrent,
        max_tokens=args.concurrent * args.prompt_tokens,
        max_sequence_length=total,
    )
    dynamic = DynamicInferenceEngine(ModelRunner(ours), tokenizer, limits)

    def concurrently() -> None:
        for p in requests:
            dynamic.add_request(params=params, prompt_tokens=p, stop=never)
        while dynamic.has_unfinished_requests():
            dynamic.step()

    def one_by_one() -> None:
        for p in requests:
            dynamic.add_request(params=params, prompt_tokens=p, stop=never)
            while dynamic.has_unfinished_requests():
                dynamic.step()

    concurrently()  # warm-up
    together = timed(concurrently)
    apart = timed(one_by_one)
    c = args.concurrent
    print(
        f"dynamic, {c} concurrent: {c * n / together:8.1f} tok/s   one by one: "
        f"{c * n / apart:8.1f} tok/s   ({apart / together:.2f}x)"
    )


if __name__ == "__main__":
    main()
