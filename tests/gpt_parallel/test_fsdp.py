"""Sharded data parallelism: FSDP2 and every sharding strategy train like one rank.

Two gloo ranks, fp32, a tiny GPTModel (tied embeddings, dropout 0) built on every rank from the
same seed; each step is 2 micro-batches per rank (the first under ``no_sync``), Adam with
clipping at 1.0. The reference is one rank stepping the same optimizer wrapper over all 4
micro-batches of the global batch.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gpt_models.model import GPTModel
from gpt_models.transformer_config import TransformerConfig
from gpt_parallel.config import LearningRateConfig, OptimizerConfig, PrecisionConfig
from gpt_parallel.fsdp import (
    STRATEGIES,
    apply_torch_fsdp2,
    check_strategy,
    is_dtensor,
    strategy_from_flags,
    wrap_data_parallel,
)
from gpt_parallel.optim import build_optimizer

STEPS = 10
MICRO_BATCHES = 2  # per rank
WORLD = 2
CLIP = 1.0
MODEL = dict(
    num_layers=2,
    hidden_size=32,
    num_attention_heads=4,
    padded_vocab_size=64,
    max_position_embeddings=16,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    # A key bias gets a gradient that is zero up to rounding (softmax ignores a constant per
    # query), which Adam turns into lr-sized steps of noise that no two summation orders share.
    add_bias_linear=False,
)
OPTIMIZER = OptimizerConfig(clip_grad=CLIP, weight_decay=0.1)
LEARNING_RATE = LearningRateConfig(lr=3e-3)
TAGS = ("tensor_model_parallel", "partition_dim", "partition_stride")


def _model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(TransformerConfig.from_flat(**MODEL))


def _micro_batch(step: int, index: int) -> torch.Tensor:
    """Micro-batch ``index`` of the global batch (rank r owns indices r*2 and r*2+1)."""
    gen = torch.Generator().manual_seed(1000 * step + index)
    return torch.randint(0, 64, (2, 12), generator=gen)


def _loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """Per-sequence summed loss, averaged: its grad norm is ~10, so clipping at 1.0 bites."""
    return model(tokens[:, :-1], labels=tokens[:, 1:]).sum(dim=1).mean()


def _reference() -> tuple[list[float], list[float], dict[str, torch.Tensor]]:
    """One rank, all 4 micro-batches of each step: losses, grad norms, final weights."""
    model = _model()
    opt = build_optimizer(model.named_parameters(), OPTIMIZER, LEARNING_RATE)
    total = WORLD * MICRO_BATCHES
    losses, norms = [], []
    for step in range(STEPS):
        opt.zero_grad()
        step_loss = 0.0
        for index in range(total):
            loss = _loss(model, _micro_batch(step, index)) / total
            loss.backward()
            step_loss += loss.item()
        stepped, norm, _ = opt.step()
        assert stepped
        losses.append(step_loss)
        norms.append(norm)
    return losses, norms, {n: p.detach().clone() for n, p in model.named_parameters()}


def _train(
    strategy: str, reshard_after_forward: bool, steps: int = STEPS, fp16: bool = False
) -> dict:
    rank = dist.get_rank()
    model = _model().half() if fp16 else _model()
    dp = wrap_data_parallel(
        model,
        strategy,
        dist.group.WORLD,
        optimizer_config=OPTIMIZER,
        learning_rate=LEARNING_RATE,
        precision=PrecisionConfig(fp16=True, loss_scale=1024.0) if fp16 else None,
        reshard_after_forward=reshard_after_forward,
    )
    losses, norms = [], []
    for step in range(steps):
        dp.zero_grad_buffer()
        step_loss = torch.zeros(1)
        for micro in range(MICRO_BATCHES):
            last = micro == MICRO_BATCHES - 1
            with dp.no_sync() if not last else _nothing():
                loss = _loss(dp, _micro_batch(step, rank * MICRO_BATCHES + micro))
                dp.optimizer.scale_loss(loss.float() / MICRO_BATCHES).backward()
            step_loss += loss.detach().float() / MICRO_BATCHES
        dp.finish_grad_sync()
        stepped, norm, _ = dp.optimizer.step()
        assert stepped
        dist.all_reduce(step_loss)
        losses.append(step_loss.item() / WORLD)
        norms.append(norm)
    result = {
        "losses": losses,
        "norms": norms,
        "weights": dp.full_parameters(),
        "state_bytes": dp.optimizer_state_bytes(),
    }
    params = dict(model.named_parameters())
    result["dtensor"] = all(is_dtensor(p) for p in params.values())
    result["tags"] = {n: tuple(getattr(p, t, None) for t in TAGS) for n, p in params.items()}
    result["embedding_tagged"] = getattr(
        params["embedding.word_embeddings.weight"], "is_embedding_or_output_parameter", False
    )
    if strategy == "optim_grads":
        shards = dp.optimizer.grad_shards
        full = sum(buf.grad_data.numel() for buf in dp.ddp.grad_buffers)
        kept = sum(buf.grad_data.untyped_storage().nbytes() for buf in dp.ddp.grad_buffers)
        result["zero2"] = (shards.numel(), full, kept)
    return result


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="module")
def reference():
    return _reference()


CASES = [
    ("optim_grads_params", True),
    ("optim_grads_params", False),
    ("no_shard", True),
    ("optim", True),
    ("optim_grads", True),
]


@pytest.mark.parametrize(
    ("strategy", "reshard"), CASES, ids=["fsdp2", "fsdp2-no-reshard", *STRATEGIES[:3]]
)
def test_two_ranks_train_like_one_rank(run_on_ranks, reference, strategy, reshard):
    ref_losses, ref_norms, ref_weights = reference
    assert min(ref_norms) > CLIP  # clipping really scales every step
    results = run_on_ranks(_train, WORLD, strategy, reshard, timeout=120.0)
    for result in results:
        assert result["losses"] == pytest.approx(ref_losses, abs=1e-5)
        assert result["norms"] == pytest.approx(ref_norms, rel=1e-5)
        assert result["weights"].keys() == ref_weights.keys()
        for name, want in ref_weights.items():
            torch.testing.assert_close(result["weights"][name], want, rtol=0, atol=1e-5)


def _fp16_norms(strategy: str) -> list[float]:
    return _train(strategy, True, steps=3, fp16=True)["norms"]


def test_fp16_with_a_loss_scale_under_fsdp2_steps_like_plain_ddp(run_on_ranks):
    """The Float16 wrapper on DTensor params: unscaled shards, the same global norms."""
    fsdp2 = run_on_ranks(_fp16_norms, WORLD, "optim_grads_params")
    plain = run_on_ranks(_fp16_norms, WORLD, "no_shard")
    for got, want in zip(fsdp2, plain, strict=True):
        assert got == pytest.approx(want, rel=1e-3)


def _fsdp2_tags() -> dict:
    model = _model()
    before = {n: tuple(getattr(p, t) for t in TAGS) for n, p in model.named_parameters()}
    apply_torch_fsdp2(model, dist.group.WORLD)
    params = dict(model.named_parameters())
    return {
        "dtensor": all(is_dtensor(p) for p in params.values()),
        "same_tags": before == {n: tuple(getattr(p, t) for t in TAGS) for n, p in params.items()},
        "embedding": params["embedding.word_embeddings.weight"].is_embedding_or_output_parameter,
        "local_rows": params["embedding.word_embeddings.weight"].to_local().shape[0],
    }


def test_fsdp2_shards_every_parameter_and_keeps_its_tags(run_on_ranks):
    for result in run_on_ranks(_fsdp2_tags, WORLD):
        assert result == {"dtensor": True, "same_tags": True, "embedding": True, "local_rows": 32}


def test_sharded_strategies_hold_half_the_optimizer_state_and_zero2_half_the_grads(run_on_ranks):
    per_strategy = {
        strategy: [r["state_bytes"] for r in run_on_ranks(_short_run, WORLD, strategy)]
        for strategy in STRATEGIES
    }
    full = per_strategy["no_shard"]
    assert full[0] == full[1] > 0
    for strategy in ("optim", "optim_grads", "optim_grads_params"):
        ranks = per_strategy[strategy]
        assert sum(ranks) == full[0], strategy  # the shards partition the state exactly
        assert all(0.4 < part / full[0] < 0.6 for part in ranks), (strategy, ranks)


def _short_run(strategy: str) -> dict:
    result = _train(strategy, True, steps=1)
    if strategy == "optim_grads":
        kept, full, storage = result["zero2"]
        assert kept * WORLD == full and storage == 0  # only this rank's shard survives the step
    return result


def test_bad_strategy_or_fsdp2_with_the_distributed_optimizer_fails_in_one_line():
    with pytest.raises(ValueError, match="--data-parallel-sharding-strategy 'zero9'") as err:
        check_strategy("zero9")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="--use-torch-fsdp2.*--use-distributed-optimizer") as err:
        strategy_from_flags(
            use_torch_fsdp2=True,
            use_megatron_fsdp=False,
            data_parallel_sharding_strategy="no_shard",
            use_distributed_optimizer=True,
        )
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="--data-parallel-sharding-strategy 'zero9'"):
        wrap_data_parallel(
            _model(), "zero9", None, optimizer_config=OPTIMIZER, learning_rate=LEARNING_RATE
        )


def test_flags_select_the_strategy():
    def pick(**flags):
        base = dict(
            use_torch_fsdp2=False,
            use_megatron_fsdp=False,
            data_parallel_sharding_strategy="no_shard",
            use_distributed_optimizer=False,
        )
        return strategy_from_flags(**{**base, **flags})

    assert pick() == "no_shard"
    assert pick(use_distributed_optimizer=True) == "optim"
    assert pick(use_torch_fsdp2=True) == "optim_grads_params"
    assert pick(use_megatron_fsdp=True, data_parallel_sharding_strategy="optim_grads") == (
        "optim_grads"
    )
