"""data_setup: the resolved flags and the tokenizer become the original's datasets and iterators."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from gpt_data.gpt_dataset import GPTDataset
from gpt_data.mock_dataset import MockGPTDataset
from gpt_data.sft_dataset import SFTDataset
from gpt_pretrain_app.cli import parse_args
from gpt_pretrain_app.data_setup import (
    build_datasets,
    build_datasets_and_iterators,
    dataset_config,
    requested_num_samples,
)
from gpt_pretrain_app.run_config import RunConfig
from gpt_pretrain_app.validate import validate_args
from gpt_tokenizers import TokenizerFlags, build_tokenizer

PREFIX = "corpus/tiny_text_document"
# The golden cache entries the original wrote for these args with the v0.14 NullTokenizer.
TRAIN_HASH = "876cd2088614f3c8b268db8f2b12f3f6"
VALID_HASH = "29748a2d9a105f5eb9fe07d730878214"


def flags(drop: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> list[str]:
    """The golden run's flags (from the working directory's copy of gpt.json), without `drop`
    (and their values), plus `extra`."""
    golden = json.loads(Path("gpt.json").read_text())["args"]
    out: list[str] = []
    skipping = False
    for token in golden:
        if token.startswith("--"):
            skipping = token in drop
        if not skipping:
            out.append(token)
    return out + list(extra)


def resolve(drop: tuple[str, ...] = (), extra: tuple[str, ...] = (), **changes) -> RunConfig:
    config = validate_args(parse_args(flags(drop, extra)), world_size=1)
    return config.with_values(**changes)


def null_tokenizer(config: RunConfig):
    tokenizer = config.tokenizer
    return build_tokenizer(
        TokenizerFlags(tokenizer_type=tokenizer.tokenizer_type, vocab_size=tokenizer.vocab_size)
    )


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, golden_dir: Path) -> Path:
    """A scratch directory laid out as the golden folder: its corpus under ./corpus (no cache),
    gpt.json (the run's flags) and first_batch.json."""
    (tmp_path / "corpus").mkdir()
    for name in (f"{PREFIX}.bin", f"{PREFIX}.idx", "gpt.json", "first_batch.json"):
        shutil.copyfile(golden_dir / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def iterators(args: RunConfig, tokenizer=None, **kwargs):
    options = dict(dp_rank=0, dp_size=1, is_build_rank=True, barrier=None)
    options.update(kwargs)
    return build_datasets_and_iterators(args, tokenizer or null_tokenizer(args), **options)


def global_batch(train, micro_batches: int = 2) -> dict[str, torch.Tensor]:
    batches = [next(train) for _ in range(micro_batches)]
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


def test_first_global_batch_equals_the_originals(workdir: Path) -> None:
    args = resolve()
    data = iterators(args)
    batch = global_batch(data.train)
    golden = json.loads((workdir / "first_batch.json").read_text())
    assert batch["tokens"].tolist() == golden["tokens"]
    assert batch["labels"].tolist() == golden["labels"]
    assert batch["loss_mask"].dtype == torch.float32 and bool((batch["loss_mask"] == 1).all())
    assert batch["attention_mask"].shape == (8, 1, 32, 32)
    assert batch["position_ids"].tolist()[0] == list(range(32))
    assert data.do_train and not data.do_valid and not data.do_test  # --eval-iters 0


def test_index_caches_get_the_originals_names_and_descriptions(
    workdir: Path, golden_dir: Path
) -> None:
    iterators(resolve())
    written = workdir / PREFIX / "cache" / "GPTDataset_indices"
    golden = golden_dir / PREFIX / "cache" / "GPTDataset_indices"
    for stem in (f"{TRAIN_HASH}-GPTDataset-train", f"{VALID_HASH}-GPTDataset-valid"):
        description = f"{stem}-description.txt"
        assert (written / description).read_text() == (golden / description).read_text()
        for name in ("document_index", "sample_index", "shuffle_index"):
            ours = np.load(written / f"{stem}-{name}.npy")
            np.testing.assert_array_equal(ours, np.load(golden / f"{stem}-{name}.npy"))


def test_resuming_after_eight_samples_gives_the_second_batch(workdir: Path) -> None:
    args = resolve()
    fresh = iterators(args).train
    global_batch(fresh)
    second = global_batch(fresh)
    resumed = global_batch(iterators(args, consumed_train_samples=8).train)
    assert resumed["tokens"].tolist() == second["tokens"].tolist()
    assert resumed["labels"].tolist() == second["labels"].tolist()


def test_data_parallel_ranks_take_their_slice_of_each_step(workdir: Path) -> None:
    args = resolve()
    whole = next(iterators(args, dp_size=1).train)["tokens"]  # samples 0..3
    halves = [
        next(iterators(resolve(micro_batch_size=2), dp_rank=r, dp_size=2).train)["tokens"]
        for r in (0, 1)
    ]  # one step of 2 x 2 samples: rank 0 takes samples 0..1, rank 1 takes 2..3
    assert torch.equal(torch.cat(halves), whole)


def test_loader_workers_give_the_same_batches(workdir: Path) -> None:
    in_process = global_batch(iterators(resolve()).train)
    with_worker = global_batch(iterators(resolve(num_workers=1)).train)
    assert torch.equal(in_process["tokens"], with_worker["tokens"])


def test_cyclic_loader_runs_past_the_end_of_the_dataset(workdir: Path) -> None:
    args = resolve(dataloader_type="cyclic")
    train = iterators(args).train
    steps = 561 // 4 + 3  # more micro-batches than one epoch of the 561 samples holds
    for _ in range(steps):
        batch = next(train)
    assert batch["tokens"].shape == (4, 32)


def test_external_loader_type_hands_over_the_dataset(workdir: Path) -> None:
    data = iterators(resolve(dataloader_type="external"))
    assert isinstance(data.train, GPTDataset)


def test_sizes_follow_train_samples_and_the_eval_schedule(workdir: Path) -> None:
    args = resolve(
        drop=("--train-iters", "--lr-warmup-iters", "--eval-iters", "--eval-interval"),
        extra=("--train-samples", "80", "--eval-iters", "2", "--eval-interval", "4"),
    )
    assert requested_num_samples(args) == (80, (80 // 8 // 4 + 1) * 2 * 8, 2 * 8)
    data = iterators(args)
    assert data.do_train and data.do_valid and not data.do_test  # split 90,10,0: no test set
    assert next(data.valid[0])["tokens"].shape == (4, 32)


def test_validation_resumes_from_consumed_valid_samples(workdir: Path) -> None:
    args = resolve(eval_iters=1)
    fresh = iterators(args).valid[0]
    next(fresh), next(fresh)
    third = next(fresh)
    resumed = next(iterators(args, consumed_valid_samples=8).valid[0])
    assert torch.equal(resumed["tokens"], third["tokens"])


def test_mock_data_builds_mock_datasets(workdir: Path) -> None:
    args = resolve(drop=("--data-path", "--split"), extra=("--mock-data",))
    tokenizer = null_tokenizer(args)
    train, valid, test = build_datasets(args, tokenizer, is_build_rank=True, barrier=None)
    assert isinstance(train, MockGPTDataset) and len(train) >= 80
    sample = train[0]["tokens"]
    assert int(sample.max()) <= tokenizer.vocab_size


def test_multiple_validation_sets_give_one_iterator_each(workdir: Path) -> None:
    for name in ("a", "b"):
        for suffix in (".bin", ".idx"):
            shutil.copyfile(workdir / f"{PREFIX}{suffix}", workdir / f"corpus/{name}{suffix}")
    per_split = ("--train-data-path", PREFIX, "--valid-data-path", "corpus/a", "corpus/b")
    base = dict(drop=("--data-path", "--split"))
    args = resolve(**base, extra=(*per_split, "--multiple-validation-sets", "--full-validation"))
    data = iterators(args)
    assert len(data.valid) == 2 and data.do_valid
    # Each set is read whole, then again from its start (the iterators cycle).
    for iterator, loader in zip(data.valid, data.valid_loaders):
        for _ in range(loader.batch_sampler.total_samples // 4 + 1):
            assert next(iterator)["tokens"].shape == (4, 32)
    without_full = resolve(**base, extra=(*per_split, "--multiple-validation-sets"), eval_iters=1)
    with pytest.raises(ValueError, match="--multiple-validation-sets currently requires"):
        iterators(without_full)


def test_ranks_that_build_nothing_get_no_iterators(workdir: Path) -> None:
    data = iterators(resolve(), is_build_rank=False)
    assert data.train is None and data.valid == [None] and data.test is None
    assert not (data.do_train or data.do_valid or data.do_test)


def test_rank_zero_builds_while_a_non_building_rank_waits_at_the_barrier(workdir: Path) -> None:
    args = resolve()
    barrier = threading.Barrier(2, timeout=60)
    results: dict[int, object] = {}

    def run(rank: int) -> None:
        results[rank] = iterators(args, is_build_rank=rank == 0, barrier=barrier.wait, rank=rank)

    threads = [threading.Thread(target=run, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results[1].train is None and results[0].do_train
    golden = json.loads((workdir / "first_batch.json").read_text())
    assert global_batch(results[0].train)["tokens"].tolist() == golden["tokens"]


def test_no_data_source_is_one_clear_error(workdir: Path) -> None:
    args = resolve(data_path=None)
    with pytest.raises(ValueError, match="no training data"):
        dataset_config(args, null_tokenizer(args))


class ChatTokenizer:
    """Words -> ids; only assistant words are targets (an SFTTokenizer stand-in)."""

    eod, pad, force_eod, vocab_size = 1, 0, True, 64
    unique_identifiers = {"class": "ChatTokenizer"}

    def tokenize_conversation(self, conversation, return_target, add_generation_prompt):
        tokens, targets = [], []
        for message in conversation:
            ids = [2 + sum(map(ord, word)) % 60 for word in message["content"].split()]
            tokens += ids
            targets += ids if message["role"] == "assistant" else [-100] * len(ids)
        return np.array(tokens), np.array(targets)


def test_sft_flag_builds_conversation_samples(workdir: Path) -> None:
    lines = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ] * 20
    path = workdir / "chat.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    args = resolve(extra=("--sft",), data_path=[str(path)], split="100,0,0")
    data = iterators(args, tokenizer=ChatTokenizer())
    batch = global_batch(data.train)
    assert batch["tokens"].shape == (8, 32)
    assert batch["loss_mask"].sum(dim=1).tolist() == [2.0] * 8  # "yo" and the forced EOD
    train, _, _ = build_datasets(args, ChatTokenizer(), is_build_rank=True, barrier=None)
    assert isinstance(train, SFTDataset)
