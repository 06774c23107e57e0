"""`pretrain` on 2 and 4 gloo ranks, run in each rank as a user's torchrun would run it, gives
the one-rank run's losses, grad norms and final weights: tensor, sequence, context and data
parallelism, the distributed optimizer, overlap, and their combinations.

Every run is fp32 with dropout 0 and `--use-cpu-initialization`, so each layout starts from the
same weights and the only differences are the order of floating-point sums (well below 1e-5).
The `eager` runs switch compilation off; the `compiled` ones take the default path, each
transformer layer a torch.compile region with the collectives run eagerly between its graphs.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from gpt_models.tp_shards import TensorSplit, merge_tensor_parallel_shards
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.flag_status import guard_flags
from gpt_pretrain_app.pipeline_setup import ModelChunks, global_named_parameters
from gpt_pretrain_app.run import run

ITERATIONS = 10
BASE = [
    "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "255",
    "--transformer-impl", "local", "--distributed-backend", "gloo",
    "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
    "--seq-length", "64", "--max-position-embeddings", "64", "--num-workers", "0",
    "--micro-batch-size", "2", "--global-batch-size", "16", "--train-iters", str(ITERATIONS),
    "--lr", "1e-3", "--lr-warmup-iters", "2", "--lr-decay-style", "cosine", "--clip-grad", "1.0",
    "--log-interval", "1", "--eval-interval", "1000", "--eval-iters", "1", "--seed", "1234",
    "--hidden-dropout", "0", "--attention-dropout", "0", "--use-cpu-initialization",
]  # fmt: skip
"""16 samples per step: 8 micro-batches on one rank, 4 per rank at DP2, 2 at DP4."""
LLAMA = ["--swiglu", "--normalization", "RMSNorm", "--position-embedding-type", "rope",
         "--disable-bias-linear", "--untie-embeddings-and-output-weights",
         "--group-query-attention", "--num-query-groups", "2", "--ffn-hidden-size", "64"]  # fmt: skip


def _set_compile(path: str) -> None:
    if path == "eager":
        os.environ["GPT_STACK_COMPILE"] = "off"
    else:
        os.environ.pop("GPT_STACK_COMPILE", None)
        os.environ.pop("GPT_STACK_NO_COMPILE", None)


def _weights(trainer) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, int]]]:
    """This rank's parameters (full tensors for FSDP's DTensors; named as in the one-process
    model for pipeline chunks) and their tensor-parallel split."""
    weights, layout = {}, {}
    model = trainer.model
    named = global_named_parameters(model) if isinstance(model, ModelChunks) else None
    for name, param in named or model.named_parameters():
        value = param.detach()
        if hasattr(value, "full_tensor"):
            value = value.full_tensor()
        weights[name] = value.clone()
        layout[name] = (getattr(param, "partition_dim", -1), getattr(param, "partition_stride", 1))
    return weights, layout


def train_on_rank(argv: list[str], path: str) -> dict:
    """One rank of a pretrain run; the harness has initialised torch.distributed."""
    _set_compile(path)
    trainers: list = []
    assert run(parse_args(argv), guard_flags, trainer_out=trainers) == 0
    trainer = trainers[0]
    weights, layout = _weights(trainer)
    return {
        "lm_loss": trainer.history.lm_loss,
        "grad_norm": trainer.history.grad_norm,
        "weights": weights,
        "layout": layout,
        "rank": dist.get_rank(),
    }


_REFERENCES: dict[tuple[str, str], dict] = {}


def model_argv(model: str) -> list[str]:
    """The flags of one of the models: gpt (2 layers), gpt4 (4 layers), llama (2 layers)."""
    if model == "gpt4":
        return [
            *BASE[: BASE.index("--num-layers") + 1],
            "4",
            *BASE[BASE.index("--num-layers") + 2 :],
        ]
    return BASE + (LLAMA if model == "llama" else [])


def one_rank_reference(model: str, path: str, tmp_path_factory) -> dict:
    """The one-rank run of `model` (cached: every layout compares with the same run)."""
    key = (model, path)
    if key not in _REFERENCES:
        old = os.environ.get("GPT_STACK_COMPILE")
        try:
            _set_compile(path)
            argv = model_argv(model)
            trainers: list = []
            assert run(parse_args(argv), guard_flags, trainer_out=trainers) == 0
            weights, _ = _weights(trainers[0])
            history = trainers[0].history
            _REFERENCES[key] = {
                "lm_loss": history.lm_loss,
                "grad_norm": history.grad_norm,
                "weights": weights,
            }
        finally:
            if old is None:
                os.environ.pop("GPT_STACK_COMPILE", None)
            else:
                os.environ["GPT_STACK_COMPILE"] = old
    return _REFERENCES[key]


def full_weights(ranks: list[dict], tp: int, pp: int) -> dict[str, torch.Tensor]:
    """The whole model: each pipeline stage's first tensor-parallel group merged (ranks are
    laid out tp fastest, pp slowest), the stages' parameters together."""
    stride = len(ranks) // pp
    weights: dict[str, torch.Tensor] = {}
    for stage in range(pp):
        group = ranks[stage * stride : stage * stride + tp]
        layout = {k: TensorSplit(*v) for k, v in group[0]["layout"].items()}
        weights.update(merge_tensor_parallel_shards([r["weights"] for r in group], layout))
    return weights


LAYOUTS = {
    "tp2": (2, ["--tensor-model-parallel-size", "2"]),
    "tp2-sp": (2, ["--tensor-model-parallel-size", "2", "--sequence-parallel"]),
    "dp2": (2, []),
    "dp2-distopt": (2, ["--use-distributed-optimizer"]),
    "dp2-overlap": (2, ["--use-distributed-optimizer", "--overlap-grad-reduce",
                        "--overlap-param-gather", "--ddp-bucket-size", "2000"]),
    "dp2-average-in-collective": (2, ["--ddp-average-in-collective", "--overlap-grad-reduce",
                                      "--ddp-num-buckets", "3"]),
    "cp2-p2p": (2, ["--context-parallel-size", "2", "--cp-comm-type", "p2p"]),
    "cp2-allgather": (2, ["--context-parallel-size", "2", "--cp-comm-type", "allgather"]),
    "cp2-a2a": (2, ["--context-parallel-size", "2", "--cp-comm-type", "a2a"]),
    "cp4-a2a+p2p": (4, ["--context-parallel-size", "4", "--cp-comm-type", "a2a+p2p",
                        "--hierarchical-context-parallel-sizes", "2", "2"]),
    "tp2-dp2": (4, ["--tensor-model-parallel-size", "2"]),
    "tp2-cp2": (4, ["--tensor-model-parallel-size", "2", "--context-parallel-size", "2"]),
    "tp2-dp2-distopt": (4, ["--tensor-model-parallel-size", "2", "--use-distributed-optimizer",
                            "--sequence-parallel"]),
    "dp4-distopt-2-instances": (4, ["--use-distributed-optimizer",
                                    "--num-distributed-optimizer-instances", "2"]),
    "dp2-distopt-cpu-offload": (2, ["--use-distributed-optimizer", "--optimizer-cpu-offload",
                                    "--optimizer-offload-fraction", "0.5"]),
    "fsdp2": (2, ["--use-torch-fsdp2"]),
    "fsdp2-no-reshard": (2, ["--use-torch-fsdp2", "--torch-fsdp2-no-reshard-after-forward"]),
    "fsdp2-tp2-sp": (4, ["--use-torch-fsdp2", "--tensor-model-parallel-size", "2",
                         "--sequence-parallel"]),
    "mfsdp-no_shard": (2, ["--use-megatron-fsdp", "--data-parallel-sharding-strategy", "no_shard"]),
    "mfsdp-optim": (2, ["--use-megatron-fsdp", "--data-parallel-sharding-strategy", "optim"]),
    "mfsdp-optim_grads": (2, ["--use-megatron-fsdp", "--data-parallel-sharding-strategy",
                              "optim_grads"]),
    "mfsdp-optim_grads_params": (2, ["--use-megatron-fsdp", "--data-parallel-sharding-strategy",
                                     "optim_grads_params"]),
}  # fmt: skip
EAGER = [("gpt", name, "eager") for name in LAYOUTS] + [
    ("llama", name, "eager") for name in ("tp2-sp", "cp2-p2p", "tp2-dp2-distopt")
]
COMPILED = [("gpt", name, "compiled") for name in ("tp2-sp", "dp2-distopt", "cp2-p2p")]


def check_same_run(ranks: list[dict], reference: dict, tp: int, pp: int = 1) -> None:
    # With pipeline parallelism the losses are known on the last stage only.
    for out in ranks[len(ranks) - len(ranks) // pp :]:
        assert len(out["lm_loss"]) == ITERATIONS
        for ours, theirs in zip(out["lm_loss"], reference["lm_loss"], strict=True):
            assert ours == pytest.approx(theirs, rel=1e-5)
        for ours, theirs in zip(out["grad_norm"], reference["grad_norm"], strict=True):
            assert ours == pytest.approx(theirs, rel=1e-4)
    weights = full_weights(ranks, tp, pp)
    assert weights.keys() == reference["weights"].keys()
    for name, value in reference["weights"].items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("model,layout,path", EAGER + COMPILED)
def test_parallel_run_equals_the_one_rank_run(run_on_ranks, tmp_path_factory, model, layout, path):
    world, flags = LAYOUTS[layout]
    argv = model_argv(model) + flags
    reference = one_rank_reference(model, path, tmp_path_factory)
    ranks = run_on_ranks(train_on_rank, world, argv, path, timeout=300)
    check_same_run(ranks, reference, _size(flags, "--tensor-model-parallel-size"))


def _size(flags: list[str], flag: str) -> int:
    return int(flags[flags.index(flag) + 1]) if flag in flags else 1


PIPELINES = {
    "pp2": (2, "gpt", ["--pipeline-model-parallel-size", "2"]),
    "pp2-untied": (2, "llama", ["--pipeline-model-parallel-size", "2"]),
    "pp4": (4, "gpt4", ["--pipeline-model-parallel-size", "4"]),
    "pp2-vpp2": (2, "gpt4", ["--pipeline-model-parallel-size", "2",
                             "--num-layers-per-virtual-pipeline-stage", "1"]),
    "pp2-uneven": (2, "gpt4", ["--pipeline-model-parallel-size", "2",
                               "--decoder-first-pipeline-num-layers", "1",
                               "--decoder-last-pipeline-num-layers", "3"]),
    "pp2-layout": (2, "gpt4", ["--pipeline-model-parallel-size", "2",
                               "--pipeline-model-parallel-layout", "Ettt|tL"]),
    "pp2-tp2": (4, "gpt4", ["--pipeline-model-parallel-size", "2",
                            "--tensor-model-parallel-size", "2", "--sequence-parallel"]),
    "pp2-dp2-distopt": (4, "gpt4", ["--pipeline-model-parallel-size", "2",
                                    "--use-distributed-optimizer"]),
    "pp2-vpp2-dp2-overlap-gather-with-step": (4, "gpt4", [
        "--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "1",
        "--use-distributed-optimizer", "--overlap-grad-reduce", "--overlap-param-gather",
        "--overlap-param-gather-with-optimizer-step", "--ckpt-format", "torch"]),
    "pp2-tp2-dp2": (8, "gpt4", ["--pipeline-model-parallel-size", "2",
                                "--tensor-model-parallel-size", "2",
                                "--use-distributed-optimizer", "--overlap-grad-reduce"]),
}  # fmt: skip


@pytest.mark.parametrize("layout", sorted(PIPELINES))
def test_pipeline_run_equals_the_one_rank_run(run_on_ranks, tmp_path_factory, layout):
    world, model, flags = PIPELINES[layout]
    reference = one_rank_reference(model, "eager", tmp_path_factory)
    argv = model_argv(model) + flags
    ranks = run_on_ranks(train_on_rank, world, argv, "eager", timeout=300)
    check_same_run(
        ranks,
        reference,
        _size(flags, "--tensor-model-parallel-size"),
        _size(flags, "--pipeline-model-parallel-size"),
    )
