"""Run `pretrain` in this process and keep its Trainer, so tests can read losses and weights."""

from __future__ import annotations

import pytest
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.flag_status import guard_flags
from gpt_pretrain_app.run import run

TINY = [
    "--mock-data",
    "--tokenizer-type", "NullTokenizer",
    "--vocab-size", "255",
    "--transformer-impl", "local",
    "--distributed-backend", "gloo",
    "--num-layers", "2",
    "--hidden-size", "32",
    "--num-attention-heads", "4",
    "--seq-length", "64",
    "--max-position-embeddings", "64",
    "--num-workers", "0",
    "--micro-batch-size", "2",
    "--global-batch-size", "4",
    "--lr", "1e-3",
    "--train-iters", "4",
    "--log-interval", "1",
    "--eval-interval", "1000",
    "--eval-iters", "1",
    "--seed", "1234",
]  # fmt: skip
"""A two-layer model on mock data (sequences of 64: the mock corpus is 205M tokens, so shorter
sequences make its shuffle index slow to build); a four-iteration run takes about a second."""


def train(argv: list[str]):
    """Run pretrain with `argv`; returns (exit code, Trainer)."""
    trainers: list = []
    code = run(parse_args(argv), guard_flags, trainer_out=trainers)
    return code, trainers[0]


@pytest.fixture
def tiny_args() -> list[str]:
    return list(TINY)


@pytest.fixture
def pretrain():
    """`pretrain(argv) -> (exit code, Trainer)`."""
    return train


@pytest.fixture
def set_flag():
    """`set_flag(argv, flag, *values) -> argv` with the flag set (replacing an earlier one)."""
    return with_flag


def with_flag(argv: list[str], flag: str, *values: str) -> list[str]:
    """`argv` with `flag` set to `values` (replacing an earlier setting)."""
    out = list(argv)
    if flag in out:
        i = out.index(flag)
        j = i + 1
        while j < len(out) and not out[j].startswith("--"):
            j += 1
        del out[i:j]
    return out + [flag, *values]
