"""MoE layouts under torchrun (gloo, fp32, no dropout, no token dropping) train to the one-rank
losses, and the layouts or flags that cannot work stop with one line naming them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gpt_ckpt.legacy_reader import load_file
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.errors import ArgsError
from gpt_pretrain_app.flag_status import guard_flags
from gpt_pretrain_app.validate import validate_args

ROOT = Path(__file__).resolve().parents[2]
PRETRAIN = ROOT / "apps" / "pretrain"
LOSS = re.compile(r" lm loss: (\S+) ")
BOTH = re.compile(r" lm loss: (\S+ \| z_loss: \S+ \| load_balancing_loss: \S+) ")

MOE = [
    "--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "255",
    "--transformer-impl", "local", "--distributed-backend", "gloo", "--num-workers", "0",
    "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
    "--seq-length", "32", "--max-position-embeddings", "32",
    "--micro-batch-size", "2", "--global-batch-size", "8", "--train-iters", "3",
    "--lr", "1e-3", "--log-interval", "1", "--eval-interval", "100", "--eval-iters", "0",
    "--hidden-dropout", "0", "--attention-dropout", "0", "--seed", "1234",
    "--swiglu", "--normalization", "RMSNorm", "--position-embedding-type", "rope",
    "--disable-bias-linear", "--untie-embeddings-and-output-weights",
    "--num-experts", "4", "--moe-router-topk", "2", "--moe-ffn-hidden-size", "48",
    "--moe-aux-loss-coeff", "1e-2", "--moe-z-loss-coeff", "1e-3",
]  # fmt: skip


def _losses(
    nproc: int, extra: list[str], cwd: Path, iterations: int = 3, field: re.Pattern = LOSS
) -> list:
    """The lm loss of each iteration (or, with another ``field``, that text as printed)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", str(PRETRAIN), *MOE, *extra]  # fmt: skip
    env = {**os.environ, "GPT_STACK_COMPILE": "off"}
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = [m[1] for line in done.stdout.splitlines() if (m := field.search(line))]
    losses = [float(x) if field is LOSS else x for x in found]
    assert len(losses) == iterations, done.stdout[-2000:]
    return losses


@pytest.fixture(scope="module")
def one_rank_losses(tmp_path_factory) -> list[float]:
    return _losses(1, [], tmp_path_factory.mktemp("one"))


EP2 = ["--expert-model-parallel-size", "2"]
ALLTOALL = ["--moe-token-dispatcher-type", "alltoall"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "nproc,flags",
    [
        (1, ["--moe-grouped-gemm"]),
        (2, EP2),  # allgather
        (2, EP2 + ALLTOALL),
        (4, EP2 + ALLTOALL + ["--use-distributed-optimizer"]),  # EP2 x DP2
        (4, EP2 + ALLTOALL + ["--tensor-model-parallel-size", "2", "--sequence-parallel",
                              "--expert-tensor-parallel-size", "1"]),
        (4, EP2 + ALLTOALL + ["--pipeline-model-parallel-size", "2"]),
    ],
    ids=["grouped-gemm", "ep2-allgather", "ep2-alltoall", "ep2-dp2-distopt", "ep2-tp2-sp",
         "pp2-ep2"],
)  # fmt: skip
def test_expert_layouts_train_to_the_one_rank_losses(tmp_path, one_rank_losses, nproc, flags):
    losses = _losses(nproc, flags, tmp_path)
    for ours, reference in zip(losses, one_rank_losses, strict=True):
        assert ours == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize(
    "recompute",
    [
        ["--recompute-granularity", "full", "--recompute-method", "uniform",
         "--recompute-num-layers", "1"],
        ["--recompute-granularity", "selective", "--recompute-modules", "moe", "layernorm"],
        ["--recompute-granularity", "selective", "--recompute-modules", "moe_act",
         "shared_experts"],
    ],
    ids=["full", "moe", "moe_act-shared_experts"],
)  # fmt: skip
def test_recomputation_trains_alike_and_logs_each_router_loss_once(tmp_path, recompute):
    """The recomputed forward in the backward pass must not record the losses (or count the
    expert-bias tokens) a second time."""
    shared = ["--moe-shared-expert-intermediate-size", "32"]
    plain = _losses(1, shared, tmp_path, field=BOTH)
    assert _losses(1, shared + recompute, tmp_path, field=BOTH) == plain


BAD = [
    # (extra flags, world size, substring of the one-line error)
    (["--moe-router-topk", "5"], 1, "--moe-router-topk (5) must be between 1 and --num-experts (4)"),
    (["--expert-model-parallel-size", "3"], 3, "--num-experts (4) must be divisible by --expert-model-parallel-size (3)"),
    (["--expert-model-parallel-size", "4"], 2, "world size (2) is not divisible by --expert-tensor-parallel-size x --expert-model-parallel-size"),
    (["--moe-token-dispatcher-type", "flex"], 1, "--moe-token-dispatcher-type flex needs --moe-enable-deepep"),
    (["--moe-router-enable-expert-bias"], 1, "--moe-router-enable-expert-bias needs --moe-router-score-function sigmoid"),
    (["--moe-router-topk", "1"], 1, "--moe-router-topk 1 with softmax scores needs --moe-router-pre-softmax"),
    (["--moe-router-group-topk", "1"], 1, "--moe-router-group-topk needs --moe-router-num-groups"),
    (["--moe-router-group-topk", "1", "--moe-router-num-groups", "3"], 1, "--num-experts (4) must be divisible by --moe-router-num-groups (3)"),
    (["--moe-pad-expert-input-to-capacity"], 1, "--moe-pad-expert-input-to-capacity needs --moe-expert-capacity-factor"),
    (["--moe-router-load-balancing-type", "sinkhorn", "--moe-expert-capacity-factor", "1.0", "--moe-aux-loss-coeff", "0"], 1, "--moe-expert-capacity-factor works with"),
    (["--moe-router-load-balancing-type", "aux_loss", "seq_aux_loss"], 1, "--moe-aux-loss-coeff needs one value per"),
    (["--moe-layer-freq", "[0,1,1]"], 1, "--moe-layer-freq pattern has 3 entries, expected --num-layers 2"),
    (["--tensor-model-parallel-size", "2", "--expert-tensor-parallel-size", "1"], 2, "needs --sequence-parallel"),
    (["--tensor-model-parallel-size", "2", "--sequence-parallel"], 2, "--expert-tensor-parallel-size 2: experts split"),
    (["--mtp-num-layers", "1", "--pipeline-model-parallel-size", "2"], 2, "--mtp-num-layers with --pipeline-model-parallel-size > 1"),
]  # fmt: skip


@pytest.mark.parametrize("extra,world_size,message", BAD)
def test_a_bad_moe_layout_stops_with_one_line_naming_the_flags(extra, world_size, message):
    with pytest.raises(ArgsError) as caught:
        validate_args(parse_args([*MOE, *extra]), world_size=world_size)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bias_linear_with_experts_is_refused():
    argv = [flag for flag in MOE if flag != "--disable-bias-linear"]
    with pytest.raises(ArgsError, match="--num-experts needs --disable-bias-linear"):
        validate_args(parse_args(argv), world_size=1)


@pytest.mark.parametrize(
    "flag,needs",
    [
        (["--moe-enable-deepep", "--moe-token-dispatcher-type", "flex"], "DeepEP"),
        (["--moe-router-fusion"], "Transformer Engine"),
        (["--moe-permute-fusion"], "Transformer Engine"),
    ],
)
def test_gpu_only_moe_flags_stop_on_the_cpu_naming_what_they_need(flag, needs):
    with pytest.raises(ArgsError) as caught:
        guard_flags(parse_args([*MOE, *flag]), False)
    assert flag[0] in str(caught.value) and needs in str(caught.value)


@pytest.mark.slow
def test_expert_parallel_checkpoints_are_one_folder_per_expert_rank_and_resume(tmp_path):
    """`--ckpt-format torch` at EP2: `mp_rank_00_000` and `mp_rank_00_001`, each with its
    local experts 0 and 1; resuming there continues as the uninterrupted run."""
    flags = [*EP2, *ALLTOALL, "--ckpt-format", "torch", "--train-iters", "4"]
    straight = _losses(2, flags, tmp_path, iterations=4)
    saved = ["--save", "ck", "--save-interval", "2", "--exit-interval", "2"]
    assert _losses(2, [*flags, *saved], tmp_path, iterations=2) == straight[:2]
    folders = sorted(p.name for p in (tmp_path / "ck" / "iter_0000002").iterdir())
    assert folders == ["mp_rank_00_000", "mp_rank_00_001"]
    shards = [
        load_file(tmp_path / "ck" / "iter_0000002" / f / "model_optim_rng.pt") for f in folders
    ]
    expert = "decoder.layers.0.mlp.experts.local_experts.{}.linear_fc1.weight"
    for shard in shards:
        assert expert.format(1) in shard["model"] and expert.format(2) not in shard["model"]
    assert not torch.equal(
        shards[0]["model"][expert.format(0)], shards[1]["model"][expert.format(0)]
    )
    resumed = _losses(2, [*flags, "--load", "ck"], tmp_path, iterations=2)
    assert resumed == straight[2:]
