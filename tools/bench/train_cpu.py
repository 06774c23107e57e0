"""Training speed on the CPU: our pretrain step against HF transformers' model of the same shape.

One run measures, interleaved so that both see the same machine load:
- tokens/s of our pretrain step (GPTModel forward with labels, token-weighted mean loss,
  backward, the gpt-parallel optimizer step: Adam with clipping at 1.0, fp32 main params for
  bf16) and of the HF peer (``GPT2LMHeadModel``, or ``LlamaForCausalLM`` with ``--arch llama``;
  ``attn_implementation="sdpa"``, torch AdamW with the same settings, clipping at 1.0), with the
  same shape, precision (fp32 weights, or bf16 weights for both), batch and dropout;
- with ``--plain-peer``, a third contestant: a plain PyTorch GPT-2-style model with SDPA,
  compiled whole with ``torch.compile`` (``plain_gpt.py``), the reference point of the issue's aim;
- a GEMM peak: the best rate of large fp32 (and bf16) matmuls, timed in the same rounds;
- our model FLOPs utilisation: the original's FLOPs formula / step time / GEMM peak.

Each round runs every contestant for about ``--window-seconds`` (ABBA order); a contestant's
figure is its best window (its median is printed too). The first step (which compiles our
regions) is reported apart and left out of the windows.

    uv run --frozen python tools/bench/train_cpu.py                  # fp32 and bf16
    uv run --frozen python tools/bench/train_cpu.py --precision fp32 --rounds 8
    uv run --frozen python tools/bench/train_cpu.py --precision fp32 --plain-peer
    uv run --frozen python tools/bench/train_cpu.py --num-layers 2 --hidden-size 64 \\
        --seq-length 32 --vocab-size 1024 --first-step-only --cache-dir /tmp/cold  # compile time
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-attention-heads", type=int, default=4)
    p.add_argument("--seq-length", type=int, default=256)
    p.add_argument("--vocab-size", type=int, default=32000, help="padded vocabulary size")
    p.add_argument("--micro-batch-size", type=int, default=4)
    p.add_argument("--arch", choices=("gpt", "llama"), default="gpt",
                   help="gpt: our default config (LayerNorm, GeLU, learned positions, biases, "
                   "tied embeddings) vs GPT2LMHeadModel; llama: RMSNorm, SwiGLU, RoPE, no "
                   "biases, untied, no dropout vs LlamaForCausalLM")  # fmt: skip
    p.add_argument("--hidden-dropout", type=float, default=None,
                   help="default: our config's (0.1 for gpt, 0 for llama); the same for HF")  # fmt: skip
    p.add_argument("--attention-dropout", type=float, default=None)
    p.add_argument("--precision", nargs="+", choices=tuple(DTYPES), default=["fp32", "bf16"])
    p.add_argument("--rounds", type=int, default=5, help="measurement windows per contestant")
    p.add_argument("--bf16-rounds", type=int, default=2, help="windows in bf16 (HF is slow)")
    p.add_argument("--window-seconds", type=float, default=8.0)
    p.add_argument("--no-hf", action="store_true", help="time our step only")
    p.add_argument("--plain-peer", action="store_true",
                   help="also time a plain PyTorch GPT-2-style model with SDPA, compiled whole "
                   "(tools/bench/plain_gpt.py; --arch gpt only)")  # fmt: skip
    p.add_argument("--compile-mode", choices=("auto", "off"), default=None,
                   help="the provider's compile choice (default: the environment's, "
                   "GPT_STACK_COMPILE / GPT_STACK_NO_COMPILE, as the pretrain app)")  # fmt: skip
    p.add_argument("--cross-entropy-loss-fusion", action="store_true")
    p.add_argument("--no-bias-gelu-fusion", action="store_true")
    p.add_argument("--no-bias-swiglu-fusion", action="store_true")
    p.add_argument("--no-bias-dropout-fusion", action="store_true")
    p.add_argument("--no-rope-fusion", action="store_true")
    p.add_argument("--first-step-only", action="store_true",
                   help="time our first step (compilation included) and stop")  # fmt: skip
    p.add_argument("--cache-dir", help="TORCHINDUCTOR_CACHE_DIR for this run (cold: empty)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--malloc-keep-freed", action="store_true",
                   help="make glibc keep freed blocks for reuse instead of returning large ones "
                   "to the OS (no page faults on big temporaries; applies to both contestants)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args(argv)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks for reuse (no mmap/munmap and page faults per step).

    Both contestants run in this process, so both get it. Returns whether it was applied.
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, 1 << 30) == 1
    return ok and libc.mallopt(m_trim_threshold, (1 << 31) - 1) == 1


# ----------------------------------------------------------------------- contestants ---
@dataclass
class Contestant:
    """A named training step and its timings."""

    name: str
    step: Callable[[], None]
    first_step_s: float = 0.0
    windows: list[float] = field(default_factory=list)  # seconds per step

    def warm_up(self) -> None:
        start = time.perf_counter()
        self.step()
        self.first_step_s = time.perf_counter() - start
        self.step()

    def window(self, seconds: float) -> None:
        steps, start = 0, time.perf_counter()
        while True:
            self.step()
            steps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        self.windows.append(elapsed / steps)

    @property
    def best(self) -> float:
        return min(self.windows)

    @property
    def median(self) -> float:
        return statistics.median(self.windows)


LLAMA = {
    "normalization": "RMSNorm",
    "swiglu": True,
    "position_embedding_type": "rope",
    "add_bias_linear": False,
    "untie_embeddings_and_output_weights": True,
    "hidden_dropout": 0.0,
    "attention_dropout": 0.0,
}


def our_config(args: argparse.Namespace, dtype: torch.dtype):
    from gpt_models import TransformerConfig

    llama = args.arch == "llama"
    return TransformerConfig.from_flat(
        num_layers=args.num_layers,
        hidden_size=args.hidden_size,
        num_attention_heads=args.num_attention_heads,
        padded_vocab_size=args.vocab_size,
        max_position_embeddings=args.seq_length,
        transformer_impl="local",
        params_dtype=dtype,
        cross_entropy_loss_fusion=args.cross_entropy_loss_fusion,
        bias_gelu_fusion=not args.no_bias_gelu_fusion,
        bias_swiglu_fusion=not args.no_bias_swiglu_fusion,
        bias_dropout_fusion=not args.no_bias_dropout_fusion,
        apply_rope_fusion=not args.no_rope_fusion,
        **(LLAMA if llama else {}),
        **{
            name: value
            for name in ("hidden_dropout", "attention_dropout")
            if (value := getattr(args, name)) is not None
        },
    )


def ours(args: argparse.Namespace, config, tokens: torch.Tensor, labels: torch.Tensor):
    """Our pretrain step: forward with labels, masked mean loss, backward, optimizer step."""
    from gpt_models import GPTModel
    from gpt_models.provider import LocalProvider
    from gpt_parallel.config import LearningRateConfig, OptimizerConfig, PrecisionConfig
    from gpt_parallel.losses import loss_for_backward
    from gpt_parallel.optim import build_optimizer

    torch.manual_seed(args.seed)
    model = GPTModel(config, provider=LocalProvider(config, compile=args.compile_mode))
    bf16 = config.params_dtype == torch.bfloat16
    optimizer = build_optimizer(
        model.named_parameters(),
        OptimizerConfig(clip_grad=1.0),
        LearningRateConfig(lr=1e-4),
        PrecisionConfig(bf16=bf16),
    )
    loss_mask = torch.ones(labels.shape, dtype=torch.float32)
    num_tokens = loss_mask.sum()

    def step() -> None:
        losses = model(tokens, labels=labels)
        loss = loss_for_backward((losses.float() * loss_mask).sum(), num_tokens, 1)
        optimizer.scale_loss(loss).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step, optimizer


def hf_model(args: argparse.Namespace, config):
    """The HF model with our config's shape and architecture."""
    import transformers

    transformers.logging.set_verbosity_error()
    if args.arch == "llama":
        hf_config = transformers.LlamaConfig(
            vocab_size=config.padded_vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.ffn_hidden_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_groups,
            max_position_embeddings=config.max_position_embeddings,
            rms_norm_eps=config.norm_epsilon,
            tie_word_embeddings=False,
            attention_dropout=config.attention_dropout,
            attn_implementation="sdpa",
        )
        return transformers.LlamaForCausalLM(hf_config)
    hf_config = transformers.GPT2Config(
        vocab_size=config.padded_vocab_size,
        n_positions=config.max_position_embeddings,
        n_embd=config.hidden_size,
        n_layer=config.num_layers,
        n_head=config.num_attention_heads,
        n_inner=config.ffn_hidden_size,
        activation_function="gelu_new",  # the tanh GeLU, as our fused bias-GeLU
        resid_pdrop=config.hidden_dropout,
        embd_pdrop=config.hidden_dropout,
        attn_pdrop=config.attention_dropout,
        layer_norm_epsilon=config.norm_epsilon,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="sdpa",
    )
    return transformers.GPT2LMHeadModel(hf_config)


def peer_adamw(params, inner: torch.optim.Optimizer) -> torch.optim.AdamW:
    """torch's AdamW with the settings of ours (lr, betas, eps, weight decay, fused or not)."""
    defaults = inner.defaults
    return torch.optim.AdamW(
        params,
        lr=defaults["lr"],
        betas=defaults["betas"],
        eps=defaults["eps"],
        weight_decay=defaults["weight_decay"],
        foreach=defaults.get("foreach"),
        fused=defaults.get("fused"),
    )


def hf(args: argparse.Namespace, config, tokens: torch.Tensor, inner: torch.optim.Optimizer):
    """HF's step: model(input_ids, labels) -> .loss, backward, clip, AdamW (same settings)."""
    torch.manual_seed(args.seed)
    model = hf_model(args, config).to(config.params_dtype)
    model.train()
    optimizer = peer_adamw(model.parameters(), inner)

    def step() -> None:
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    return step


# ------------------------------------------------------------------------ GEMM peak ---
class GemmPeak:
    """Best rate of square matmuls (into a preallocated output) seen so far, per dtype."""

    SIZES = (1024, 2048, 4096)

    def __init__(self, dtype: torch.dtype, budget_s: float = 3.0) -> None:
        self.dtype = dtype
        self.budget_s = budget_s
        self.rate = 0.0
        self.size = 0

    def sample(self) -> None:
        for n in self.SIZES:
            a = torch.randn(n, n).to(self.dtype)
            b = torch.randn(n, n).to(self.dtype)
            out = torch.empty(n, n, dtype=self.dtype)
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            first = time.perf_counter() - start
            best = first
            for _ in range(3 if first < self.budget_s / 4 else 0):
                start = time.perf_counter()
                torch.mm(a, b, out=out)
                best = min(best, time.perf_counter() - start)
            rate = 2 * n**3 / best
            if rate > self.rate:
                self.rate, self.size = rate, n
            if first * 8 > self.budget_s:  # the next size would take 8x longer
                break


# --------------------------------------------------------------------------- report ---
def layer_fusions(config) -> tuple[str, ...]:
    from gpt_models.provider import LocalProvider

    return LocalProvider(config).layer_fusions()


def tokens_per_s(tokens_per_step: int, seconds: float) -> float:
    return tokens_per_step / seconds


def run_precision(
    args: argparse.Namespace,
    name: str,
    peaks: dict[str, GemmPeak],
    out: Callable[[str], None],
) -> None:
    from gpt_models.flops import transformer_flops

    dtype = DTYPES[name]
    config = our_config(args, dtype)
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.micro_batch_size, args.seq_length)
    tokens = torch.randint(0, args.vocab_size, shape, generator=g)
    labels = torch.randint(0, args.vocab_size, shape, generator=g)
    our_step, optimizer = ours(args, config, tokens, labels)
    contestants = [Contestant("ours", our_step)]
    if not args.no_hf and not args.first_step_only:
        contestants.append(Contestant("HF", hf(args, config, tokens, optimizer.optimizer)))
    if args.plain_peer and not args.first_step_only:
        from plain_gpt import plain_step

        inner = optimizer.optimizer
        step = plain_step(config, tokens, labels, lambda ps: peer_adamw(ps, inner), args.seed)
        contestants.append(Contestant("plain", step))
    for c in contestants:
        c.warm_up()
    first = ", ".join(f"{c.name} {c.first_step_s:.2f} s" for c in contestants)
    out(f"{name}: first step (ours includes compilation): {first}")
    if args.first_step_only:
        return
    rounds = args.rounds if name == "fp32" else args.bf16_rounds
    for r in range(rounds):
        order = contestants if r % 2 == 0 else contestants[::-1]
        for c in order:
            c.window(args.window_seconds)
        for peak in peaks.values():
            peak.sample()
    tokens_per_step = args.micro_batch_size * args.seq_length
    flops = transformer_flops(config, batch_size=args.micro_batch_size, seq_length=args.seq_length)
    for c in contestants:
        out(
            f"{name}: {c.name:5s} {tokens_per_s(tokens_per_step, c.best):8.0f} tokens/s best, "
            f"{tokens_per_s(tokens_per_step, c.median):8.0f} median "
            f"({c.best * 1e3:.0f} / {c.median * 1e3:.0f} ms per step, {len(c.windows)} windows)"
        )
    mine = contestants[0]
    for peer in contestants[1:]:
        out(
            f"{name}: ours / {peer.name} = {peer.best / mine.best:.2f}x (best windows), "
            f"{peer.median / mine.median:.2f}x (medians)"
        )
    from gpt_models.kernels.matmul import gemm_in_fp32

    arithmetic = "fp32" if gemm_in_fp32(torch.empty(0, dtype=dtype)) else name
    note = "" if arithmetic == name else f" ({name} GEMMs run in fp32 arithmetic on this CPU)"
    out(
        f"{name}: ours {flops / 1e9:.1f} GFLOP per step (model FLOPs): MFU "
        f"{flops / mine.best / peaks[arithmetic].rate:.0%} of the {arithmetic} GEMM peak{note}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plain_peer and args.arch != "gpt":
        raise SystemExit("error: --plain-peer is a GPT-2-style model: use it with --arch gpt")
    if args.cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.abspath(args.cache_dir)
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = keep_freed_memory() if args.malloc_keep_freed else False
    from gpt_models.kernels.compiled import compile_choice_from_environment

    args.compile_mode = args.compile_mode or compile_choice_from_environment(os.environ)

    def out(line: str) -> None:
        print(line, flush=True)

    import transformers

    peer = "LlamaForCausalLM" if args.arch == "llama" else "GPT2LMHeadModel"
    out(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"compile mode {args.compile_mode}, malloc keeps freed memory: {malloc}"
    )
    config = our_config(args, torch.float32)
    out(
        f"model: {args.arch}, {args.num_layers} layers, hidden {args.hidden_size}, "
        f"{args.num_attention_heads} heads, seq {args.seq_length}, vocab {args.vocab_size}, "
        f"micro batch {args.micro_batch_size}, dropout {config.hidden_dropout}/"
        f"{config.attention_dropout}, fused layers: {', '.join(layer_fusions(config)) or 'none'}, "
        f"cross-entropy fusion: {config.cross_entropy_loss_fusion}; peer: transformers {peer} (sdpa)"
    )
    peaks = {} if args.first_step_only else {"fp32": GemmPeak(torch.float32)}
    if "bf16" in args.precision and not args.first_step_only:
        peaks["bf16"] = GemmPeak(torch.bfloat16)
    for peak in peaks.values():
        peak.sample()
    for name in args.precision:
        run_precision(args, name, peaks, out)
    for k, p in peaks.items():
        out(f"GEMM peak {k}: {p.rate / 1e9:.1f} GFLOP/s ({p.size}^3 matmul, best of all rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
