"""validate_args: the original's derived values, and one clear line for each invalid combination."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.errors import ArgsError
from gpt_pretrain_app.validate import validate_args

BASE = [
    "--num-layers", "4", "--hidden-size", "64", "--num-attention-heads", "4",
    "--seq-length", "32", "--max-position-embeddings", "32",
    "--micro-batch-size", "2", "--train-iters", "10", "--lr", "1e-3", "--mock-data",
]  # fmt: skip


@dataclass(frozen=True)
class Resolved:
    """validate_args' RunConfig, seen as the original's flat args (what these tests check)."""

    args: argparse.Namespace
    warnings: tuple[str, ...]
    messages: tuple[str, ...]


def validated(argv: list[str], world_size: int = 1) -> Resolved:
    config = validate_args(parse_args(argv), world_size=world_size)
    return Resolved(config.to_original_args(), config.warnings, config.messages)


def resolve(*extra: str, world_size: int = 1, base: list[str] = BASE) -> Resolved:
    return validated([*base, *extra], world_size=world_size)


def without(*flags: str) -> list[str]:
    out, skip = [], False
    for i, token in enumerate(BASE):
        if skip:
            skip = False
            continue
        if token in flags:
            skip = i + 1 < len(BASE) and not BASE[i + 1].startswith("--")
            continue
        out.append(token)
    return out


INVALID = [
    # (extra flags, world size, base, substring of the one-line error)
    (["--fp16", "--bf16"], 1, BASE, "--fp16 and --bf16"),
    (["--tensor-model-parallel-size", "3"], 4, BASE, "not divisible"),
    (["--pipeline-model-parallel-size", "3"], 4, BASE, "not divisible"),
    (["--tensor-model-parallel-size", "0"], 1, BASE, "--tensor-model-parallel-size must be at least 1"),
    (["--global-batch-size", "5"], 2, BASE, "--global-batch-size (5) must be divisible"),
    (["--global-batch-size", "0"], 1, BASE, "--global-batch-size must be positive"),
    (["--micro-batch-size", "0"], 1, BASE, "--micro-batch-size must be positive"),
    ([], 1, without("--micro-batch-size"), "--micro-batch-size is required"),
    ([], 1, without("--num-layers"), "--num-layers is required"),
    ([], 1, without("--hidden-size"), "--hidden-size is required"),
    ([], 1, without("--num-attention-heads"), "--num-attention-heads is required"),
    ([], 1, without("--max-position-embeddings"), "--max-position-embeddings is required"),
    ([], 1, without("--seq-length"), "--seq-length is required"),
    ([], 1, without("--train-iters"), "--train-iters or --train-samples is required"),
    (["--train-samples", "100"], 1, BASE, "--train-iters and --train-samples are mutually exclusive"),
    (["--lr-decay-samples", "100"], 1, BASE, "--lr-decay-samples needs --train-samples"),
    (["--lr-warmup-samples", "10"], 1, BASE, "--lr-warmup-samples needs --train-samples"),
    (["--train-samples", "100", "--lr-decay-iters", "5"], 1, without("--train-iters"), "--lr-decay-iters needs --train-iters"),
    (["--train-samples", "100", "--lr-warmup-iters", "5"], 1, without("--train-iters"), "--lr-warmup-iters needs --train-iters"),
    (["--lr-warmup-fraction", "0.1", "--lr-warmup-iters", "2"], 1, BASE, "mutually exclusive"),
    (["--lr-warmup-fraction", "1.5"], 1, BASE, "--lr-warmup-fraction must be in [0, 1]"),
    (["--min-lr", "1.0"], 1, BASE, "--min-lr (1.0) must not exceed --lr"),
    (["--min-lr", "-1"], 1, BASE, "--min-lr must not be negative"),
    (["--lr-warmup-init", "1.0"], 1, BASE, "--lr-warmup-init (1.0) must not exceed --lr"),
    (["--lr-decay-style", "WSD"], 1, BASE, "--lr-decay-style WSD needs --lr-wsd-decay-iters"),
    (["--override-opt_param-scheduler", "--use-checkpoint-opt_param-scheduler"], 1, BASE, "mutually exclusive"),
    (["--start-weight-decay", "0.1"], 1, BASE, "--start-weight-decay/--end-weight-decay need"),
    (["--weight-decay-incr-style", "linear"], 1, BASE, "--weight-decay-incr-style linear needs --start-weight-decay"),
    (["--weight-decay-incr-style", "cosine", "--start-weight-decay", "0.2", "--end-weight-decay", "0.1"], 1, BASE, "--end-weight-decay must not be below"),
    (["--rampup-batch-size", "2", "2", "100", "--global-batch-size", "8"], 1, BASE, "--rampup-batch-size needs --train-samples"),
    (["--rampup-batch-size", "3", "2", "100", "--global-batch-size", "8", "--train-samples", "100"], 1, without("--train-iters"), "must be divisible by the rampup increment"),
    (["--rampup-batch-size", "2", "2"], 1, BASE, "takes three values"),
    (["--hidden-size", "66"], 1, BASE, "--hidden-size (66) must be divisible by --num-attention-heads"),
    (["--group-query-attention", "--num-query-groups", "3"], 1, BASE, "must be divisible by --num-query-groups (3)"),
    (["--group-query-attention", "--num-query-groups", "1", "--tensor-model-parallel-size", "2"], 2, BASE, "--num-query-groups (1) must be divisible by --tensor-model-parallel-size"),
    (["--num-attention-heads", "6", "--hidden-size", "48", "--tensor-model-parallel-size", "4"], 4, BASE, "--num-attention-heads (6) must be divisible by --tensor-model-parallel-size"),
    (["--max-position-embeddings", "16"], 1, BASE, "--max-position-embeddings (16) must be at least --seq-length (32)"),
    (["--encoder-num-layers", "3"], 1, BASE, "--encoder-num-layers and --num-layers disagree"),
    (["--encoder-seq-length", "16"], 1, BASE, "--seq-length and --encoder-seq-length disagree"),
    (["--swiglu", "--squared-relu"], 1, BASE, "--swiglu and --squared-relu are mutually exclusive"),
    (["--qk-layernorm", "--qk-l2-norm"], 1, BASE, "--qk-layernorm and --qk-l2-norm"),
    (["--hidden-dropout", "1.5"], 1, BASE, "--hidden-dropout must be in [0, 1]"),
    (["--attention-dropout", "-0.1"], 1, BASE, "--attention-dropout must be in [0, 1]"),
    (["--rotary-percent", "0"], 1, BASE, "--rotary-percent must be in (0, 1]"),
    (["--position-embedding-type", "mrope"], 1, BASE, "--position-embedding-type mrope needs --mrope-section"),
    (["--mtp-num-layers", "1"], 1, BASE, "--mtp-num-layers needs --position-embedding-type rope or none"),
    (["--use-rope-scaling"], 1, BASE, "--use-rope-scaling needs --position-embedding-type rope"),
    (["--fp16-lm-cross-entropy"], 1, BASE, "--fp16-lm-cross-entropy needs --fp16"),
    (["--fp32-residual-connection"], 1, BASE, "--fp32-residual-connection needs --fp16 or --bf16"),
    (["--grad-reduce-in-bf16"], 1, BASE, "--grad-reduce-in-bf16 needs --bf16"),
    (["--loss-scale", "-1", "--fp16"], 1, BASE, "--loss-scale must be positive"),
    (["--hysteresis", "0"], 1, BASE, "--hysteresis must be at least 1"),
    (["--recompute-granularity", "full"], 1, BASE, "--recompute-granularity full needs --recompute-method"),
    (["--recompute-granularity", "selective", "--recompute-method", "uniform"], 1, BASE, "--recompute-method applies to --recompute-granularity full only"),
    (["--recompute-method", "block"], 1, BASE, "--recompute-method needs --recompute-granularity full"),
    (["--recompute-num-layers", "2"], 1, BASE, "--recompute-num-layers needs --recompute-granularity full"),
    (["--recompute-granularity", "full", "--recompute-method", "block", "--recompute-num-layers", "9"], 1, BASE, "exceeds the layers per pipeline stage"),
    (["--recompute-activations", "--recompute-granularity", "full", "--recompute-method", "uniform"], 1, BASE, "--recompute-activations (selective recompute) conflicts"),
    (["--distribute-saved-activations"], 1, BASE, "--distribute-saved-activations needs --tensor-model-parallel-size > 1"),
    (["--num-layers", "3", "--pipeline-model-parallel-size", "2"], 2, BASE, "--num-layers (3) must be divisible by --pipeline-model-parallel-size (2)"),
    (["--num-layers-per-virtual-pipeline-stage", "1"], 1, BASE, "needs --pipeline-model-parallel-size > 1"),
    (["--num-layers-per-virtual-pipeline-stage", "1", "--num-virtual-stages-per-pipeline-rank", "2", "--pipeline-model-parallel-size", "2"], 2, BASE, "mutually exclusive"),
    (["--num-virtual-stages-per-pipeline-rank", "2", "--pipeline-model-parallel-size", "2", "--no-overlap-p2p-communication"], 2, BASE, "interleaved pipeline schedule"),
    (["--context-parallel-size", "2", "--seq-length", "30", "--max-position-embeddings", "32"], 2, BASE, "--seq-length (30) must be divisible by 2 x --context-parallel-size"),
    (["--expert-model-parallel-size", "2"], 2, BASE, "--expert-model-parallel-size > 1 needs --num-experts"),
    (["--expert-model-parallel-size", "2", "--num-experts", "3"], 2, BASE, "--num-experts (3) must be divisible by --expert-model-parallel-size"),
    (["--num-experts", "2", "--moe-router-topk", "3"], 1, BASE, "--moe-router-topk (3) must be between 1 and --num-experts (2)"),
    (["--overlap-param-gather"], 1, BASE, "--overlap-param-gather needs --use-distributed-optimizer"),
    (["--overlap-param-gather", "--use-distributed-optimizer"], 1, BASE, "--overlap-param-gather needs --overlap-grad-reduce"),
    (["--use-torch-fsdp2", "--use-megatron-fsdp"], 1, BASE, "mutually exclusive"),
    (["--tensor-model-parallel-size", "2", "--sequence-parallel", "--tp-comm-overlap"], 2, BASE, None),
    (["--save", "ckpt"], 1, BASE, "--save needs --save-interval"),
    (["--save", "ckpt", "--save-interval", "4", "--save-retain-interval", "6"], 1, BASE, "must be a multiple of --save-interval"),
    (["--load-main-params-from-ckpt"], 1, BASE, "--load-main-params-from-ckpt needs --no-load-optim"),
    (["--ckpt-format", "fsdp_dtensor"], 1, BASE, "--ckpt-format fsdp_dtensor needs --use-megatron-fsdp"),
    (["--async-save"], 1, BASE, "--async-save needs --save"),
    (["--use-checkpoint-args"], 1, BASE, "--use-checkpoint-args needs --load"),
    (["--data-path", "x"], 1, BASE, "--mock-data and --data-path are mutually exclusive"),
    (["--data-path", "x", "--data-args-path", "y"], 1, without("--mock-data"), "--data-path and --data-args-path are mutually exclusive"),
    (["--train-data-path", "a", "--per-split-data-args-path", "b"], 1, without("--mock-data"), "mutually exclusive"),
    (["--train-data-path", "a", "--split", "1,1,1"], 1, without("--mock-data"), "--split applies to --data-path"),
    (["--data-path", "-1", "a", "2", "b"], 1, without("--mock-data"), "weight -1 must not be negative"),
    (["--num-workers", "-1"], 1, BASE, "--num-workers must not be negative"),
    (["--deterministic-mode", "--use-flash-attn"], 1, BASE, "--deterministic-mode cannot be combined with --use-flash-attn"),
    (["--deterministic-mode", "--cross-entropy-loss-fusion"], 1, BASE, "--cross-entropy-loss-fusion"),
    (["--log-interval", "0"], 1, BASE, "--log-interval must be positive"),
    (["--eval-iters", "-1"], 1, BASE, "--eval-iters must not be negative"),
    (["--exit-interval", "0"], 1, BASE, "--exit-interval must be positive"),
    (["--manual-gc-interval", "5"], 1, BASE, "--manual-gc-interval needs --manual-gc"),
    (["--profile", "--profile-step-start", "5", "--profile-step-end", "5"], 1, BASE, "--profile-step-end must be after"),
    (["--wandb-exp-name", "run"], 1, BASE, "need --wandb-project"),
    (["--log-timers-to-tensorboard"], 1, BASE, "need --tensorboard-dir"),
    (["--skip-train", "--eval-iters", "0"], 1, BASE, "--skip-train needs --eval-iters > 0"),
    (["--batch-size", "3"], 1, BASE, "--batch-size (deprecated) and --micro-batch-size disagree"),
    (["--model-parallel-size", "2", "--tensor-model-parallel-size", "4"], 8, BASE, "disagree"),
    (["--checkpoint-activations", "--recompute-granularity", "selective"], 1, BASE, "--checkpoint-activations"),
    (["--use-rotary-position-embeddings", "--position-embedding-type", "none"], 1, BASE, "conflicts with --position-embedding-type none"),
]  # fmt: skip
INVALID = [case for case in INVALID if case[3] is not None]


@pytest.mark.parametrize(
    "extra,world,base,message", INVALID, ids=[" ".join(c[0]) or c[3] for c in INVALID]
)
def test_invalid_combination_fails_with_one_line_naming_the_flags(extra, world, base, message):
    with pytest.raises(ArgsError) as info:
        resolve(*extra, world_size=world, base=base)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert "--" in text


def test_at_least_forty_invalid_combinations_are_covered():
    assert len(INVALID) >= 40


def test_data_parallel_size_and_default_global_batch_size():
    r = resolve(
        "--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2", world_size=8
    )
    assert r.args.data_parallel_size == 2
    assert r.args.global_batch_size == 2 * 2  # micro-batch x data-parallel
    assert r.args.num_microbatches == 1
    assert "setting global batch size to 4" in r.messages


def test_number_of_microbatches():
    r = resolve("--global-batch-size", "16", world_size=2)
    assert r.args.num_microbatches == 16 // (2 * 2)
    assert "setting number of microbatches to constant 4" in r.messages


def test_ffn_hidden_size_defaults_gelu_and_swiglu():
    assert resolve().args.ffn_hidden_size == 4 * 64
    assert (
        resolve(
            "--hidden-size", "4096", "--num-attention-heads", "32", "--swiglu"
        ).args.ffn_hidden_size
        == 10880
    )
    assert resolve("--swiglu").args.ffn_hidden_size == int((4 * 64 * 2 / 3) / 64) * 64
    assert resolve("--ffn-hidden-size", "100", "--swiglu").args.ffn_hidden_size == 100


def test_kv_channels_and_query_groups():
    args = resolve().args
    assert args.kv_channels == 16
    assert args.num_query_groups is None  # MHA unless --group-query-attention
    args = resolve("--group-query-attention", "--num-query-groups", "2", "--kv-channels", "8").args
    assert args.num_query_groups == 2 and args.kv_channels == 8


def test_rampup_leaves_microbatches_to_the_calculator():
    extra = [
        "--rampup-batch-size",
        "2",
        "2",
        "100",
        "--global-batch-size",
        "8",
        "--train-samples",
        "200",
    ]
    r = validated([*without("--train-iters"), *extra])
    assert r.args.num_microbatches is None and r.args.global_batch_size == 8


def test_precision_derived_values():
    assert resolve().args.params_dtype == "float32"
    bf16 = resolve("--bf16").args
    assert bf16.params_dtype == "bfloat16" and bf16.accumulate_allreduce_grads_in_fp32
    assert not resolve("--bf16", "--grad-reduce-in-bf16").args.accumulate_allreduce_grads_in_fp32
    fp16 = resolve("--fp16").args
    assert fp16.params_dtype == "float16" and not fp16.check_for_nan_in_loss_and_grad
    assert resolve("--fp16", "--loss-scale", "128").args.check_for_nan_in_loss_and_grad
    assert resolve("--apply-query-key-layer-scaling").args.attention_softmax_in_fp32


def test_fusion_switches_follow_the_model():
    args = resolve("--disable-bias-linear").args
    assert not args.bias_gelu_fusion and not args.add_bias_linear
    assert resolve().args.add_qkv_bias  # biases everywhere by default
    assert not resolve().args.apply_rope_fusion  # learned positions
    assert resolve("--position-embedding-type", "rope").args.apply_rope_fusion


def test_weight_decay_constant_style_fills_start_and_end():
    args = resolve("--weight-decay", "0.1").args
    assert args.start_weight_decay == args.end_weight_decay == 0.1


def test_sequence_parallel_without_tensor_parallelism_fails_in_one_line():
    with pytest.raises(ArgsError, match="--sequence-parallel needs --tensor-model-parallel-size"):
        resolve("--sequence-parallel")


def test_tensor_parallel_size_must_divide_the_ffn_width_and_the_sp_sequence():
    with pytest.raises(ArgsError, match=r"--ffn-hidden-size \(\d+\) must be divisible"):
        resolve("--tensor-model-parallel-size", "3", "--num-attention-heads", "3", "--kv-channels", "8",
                "--ffn-hidden-size", "100", world_size=3)  # fmt: skip
    assert resolve("--tensor-model-parallel-size", "2", "--sequence-parallel",
                   world_size=2).args.sequence_parallel  # fmt: skip


def test_virtual_pipeline_size():
    r = resolve("--pipeline-model-parallel-size", "4", "--num-layers", "8",
                "--num-layers-per-virtual-pipeline-stage", "1", world_size=4)  # fmt: skip
    assert r.args.virtual_pipeline_model_parallel_size == 2
    assert resolve().args.virtual_pipeline_model_parallel_size is None


def test_data_path_gets_the_default_split():
    r = validated([*without("--mock-data"), "--data-path", "corpus"])
    assert r.args.split == "969, 30, 1"
    assert r.args.dataloader_type == "single"


def test_deprecated_flags_map_to_their_replacements_with_one_warning():
    r = validated([*without("--micro-batch-size"), "--batch-size", "3"])
    assert r.args.micro_batch_size == 3 and r.args.batch_size is None
    assert r.warnings == ("warning: --batch-size is deprecated, use --micro-batch-size",)
    r = resolve("--warmup", "3")
    assert r.args.lr_warmup_iters == 3
    r = resolve("--model-parallel-size", "2", world_size=2)
    assert r.args.tensor_model_parallel_size == 2 and r.args.data_parallel_size == 1
    r = resolve("--checkpoint-activations")
    assert (r.args.recompute_granularity, r.args.recompute_method, r.args.recompute_num_layers) == (
        "full",
        "uniform",
        1,
    )
    assert resolve("--recompute-activations").args.recompute_granularity == "selective"
    assert resolve("--use-rotary-position-embeddings").args.position_embedding_type == "rope"
    assert resolve("--no-position-embedding").args.position_embedding_type == "none"
    assert len(resolve("--use-dist-ckpt").warnings) == 1


def test_the_parsed_namespace_is_never_changed():
    args = parse_args(BASE)
    before = vars(args).copy()
    validate_args(args)
    assert vars(args) == before


@pytest.mark.parametrize(
    "extra,world,message",
    [
        (["--optimizer-cpu-offload"], 2, "--optimizer-cpu-offload needs --use-distributed-optimizer"),
        (["--num-distributed-optimizer-instances", "2"], 4,
         "--num-distributed-optimizer-instances > 1 needs --use-distributed-optimizer"),
        (["--use-distributed-optimizer", "--overlap-grad-reduce", "--overlap-param-gather",
          "--overlap-param-gather-with-optimizer-step"], 2,
         "--overlap-param-gather-with-optimizer-step needs interleaved pipeline parallelism"),
    ],
)  # fmt: skip
def test_distributed_optimizer_options_need_what_the_original_needs(extra, world, message):
    with pytest.raises(ArgsError, match=message):
        resolve(*extra, world_size=world)
