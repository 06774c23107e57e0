"""Training speed on one GPU: our pretrain step against HF transformers' model of the same shape.

A GPT of about 1.3B parameters (24 layers, hidden 2048, 16 heads, seq 2048, vocab 50304) in bf16:
- ours: GPTModel on the pure-PyTorch path (SDPA attention, which is flash attention on Hopper;
  every layer one compiled region), the token-weighted loss, and the gpt-parallel optimizer step
  (fused AdamW on fp32 main params, clipping at 1.0), as `pretrain --bf16` runs it;
- HF: `GPT2LMHeadModel` (or `LlamaForCausalLM` with --arch llama) of the same shape with
  `attn_implementation="sdpa"`, bf16 weights, torch's fused AdamW, clipping at 1.0.

Each contestant runs --warmup steps (compilation included), then --steps timed steps between CUDA
synchronisations. MFU is the original's model-FLOPs formula per step / step time / the GPU's dense
bf16 peak; the bench also measures a large bf16 GEMM in the same run and gives MFU against it.

    python tools/bench/train_gpu.py                      # on a CUDA machine
    python tools/bench/train_gpu.py --num-layers 4 --steps 5   # a quick look
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEVICE = "cuda"
#: Dense bf16 tensor-core peaks (no sparsity) from the vendors' data sheets, by device name.
DENSE_BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "B200": 2250e12}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("gpt", "llama"), default="gpt")
    p.add_argument("--num-layers", type=int, default=24)
    p.add_argument("--hidden-size", type=int, default=2048)
    p.add_argument("--num-attention-heads", type=int, default=16)
    p.add_argument("--seq-length", type=int, default=2048)
    p.add_argument("--vocab-size", type=int, default=50304)
    p.add_argument("--micro-batch-size", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-hf", action="store_true")
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args(argv)


def our_config(args: argparse.Namespace):
    from gpt_models import TransformerConfig
    from train_cpu import LLAMA

    values = dict(
        num_layers=args.num_layers,
        hidden_size=args.hidden_size,
        num_attention_heads=args.num_attention_heads,
        padded_vocab_size=args.vocab_size,
        max_position_embeddings=args.seq_length,
        transformer_impl="local",
        params_dtype=torch.bfloat16,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        **(LLAMA if args.arch == "llama" else {}),
    )
    build = getattr(TransformerConfig, "from_flat", TransformerConfig)
    return build(**values)


def our_step(args: argparse.Namespace, config, tokens, labels) -> Callable[[], None]:
    from train_cpu import ours

    step, _optimizer = ours(args, config, tokens, labels)
    return step


def hf_step(args: argparse.Namespace, config, tokens) -> Callable[[], None]:
    from train_cpu import hf_model

    torch.manual_seed(args.seed)
    model = hf_model(args, config).to(device=DEVICE, dtype=torch.bfloat16)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, weight_decay=0.01, fused=DEVICE == "cuda"
    )

    def step() -> None:
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def time_steps(step: Callable[[], None], warmup: int, steps: int) -> tuple[float, float]:
    """(first step seconds, mean seconds per timed step)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return first, (time.perf_counter() - start) / steps


def gemm_peak(n: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def data_sheet_peak(name: str) -> float | None:
    for key, peak in DENSE_BF16_PEAK.items():
        if key in name:
            return peak
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("error: train_gpu.py needs a CUDA GPU", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name()
    import transformers
    from gpt_models.flops import transformer_flops

    config = our_config(args)
    te = importlib.util.find_spec("transformer_engine") is not None
    print(
        f"GPU {name}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"CPU {platform.processor() or platform.machine()}, Transformer Engine installed: {te} "
        "(gpt-models has no Transformer Engine provider yet: ours runs the PyTorch path)",
        flush=True,
    )
    measured = gemm_peak()
    sheet = data_sheet_peak(name)
    print(
        f"bf16 GEMM 8192^3 measured: {measured / 1e12:.0f} TFLOP/s; data-sheet dense bf16 peak: "
        f"{sheet / 1e12:.0f} TFLOP/s"
        if sheet
        else "unknown",
        flush=True,
    )
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.micro_batch_size, args.seq_length)
    tokens = torch.randint(0, args.vocab_size, shape, generator=g).to(DEVICE)
    labels = torch.randint(0, args.vocab_size, shape, generator=g).to(DEVICE)
    flops = transformer_flops(config, batch_size=args.micro_batch_size, seq_length=args.seq_length)
    contestants: list[tuple[str, Callable[[], Callable[[], None]]]] = [
        ("ours (PyTorch path)", lambda: our_step(args, config, tokens, labels))
    ]
    if not args.no_hf:
        contestants.append(("HF " + ("LlamaForCausalLM" if args.arch == "llama" else
                                     "GPT2LMHeadModel") + " (sdpa)", lambda: hf_step(args, config, tokens)))  # fmt: skip
    results = {}
    for label, make in contestants:
        with torch.device(DEVICE):
            step = make()
        first, per_step = time_steps(step, args.warmup, args.steps)
        tokens_s = args.micro_batch_size * args.seq_length / per_step
        mfu_sheet = flops / per_step / sheet if sheet else float("nan")
        results[label] = per_step
        print(
            f"{label}: first step {first:.1f} s, {per_step * 1e3:.0f} ms/step, "
            f"{tokens_s:,.0f} tokens/s, {flops / per_step / 1e12:.0f} TFLOP/s model, "
            f"MFU {mfu_sheet:.1%} of the data-sheet peak, {flops / per_step / measured:.1%} of the "
            f"measured GEMM, peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB",
            flush=True,
        )
        del step
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if len(results) == 2:
        ours_s, hf_s = results.values()
        print(f"ours / HF tokens/s: {hf_s / ours_s:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
