"""SFTDataset: conversations from JSONL become padded samples that train on assistant tokens only."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from gpt_data.builder import BlendedMegatronDatasetBuilder
from gpt_data.samplers import build_pretraining_data_loader
from gpt_data.sft_dataset import IGNORE_INDEX, SFTDataset, SFTDatasetConfig, SFTLowLevelDataset
from gpt_data.splits import Split

PAD, EOD = 0, 1


class WordTokenizer:
    """Content words -> ids (from 2 up); system and user words get IGNORE_INDEX targets."""

    eod = EOD
    pad = PAD

    def __init__(self, force_eod: bool = True) -> None:
        self.force_eod = force_eod
        self.ids: dict[str, int] = {}

    def id(self, word: str) -> int:
        return self.ids.setdefault(word, len(self.ids) + 2)

    def tokenize_conversation(self, conversation, return_target, add_generation_prompt):
        tokens: list[int] = []
        targets: list[int] = []
        for message in conversation:
            ids = [self.id(word) for word in message["content"].split()]
            tokens += ids
            targets += ids if message["role"] == "assistant" else [IGNORE_INDEX] * len(ids)
        return np.array(tokens), np.array(targets)


def chat(system: str, user: str, assistant: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


def write_jsonl(path: Path, records: list[dict], blank_lines: bool = False) -> str:
    lines = [json.dumps(record) for record in records]
    separator = "\n\n" if blank_lines else "\n"
    path.write_text(separator.join(lines) + "\n", encoding="utf-8")
    return str(path)


def sft_config(path: str, tokenizer, **fields) -> SFTDatasetConfig:
    base = dict(
        random_seed=1234,
        sequence_length=8,
        blend=([path], None),
        split="100,0,0",
        eod_id=tokenizer.eod,
        pad_id=tokenizer.pad,
        tokenizer=tokenizer,
        tokenizer_unique_identifiers={"class": "WordTokenizer"},
    )
    base.update(fields)
    return SFTDatasetConfig(**base)


def build(config: SFTDatasetConfig, sizes) -> list:
    return BlendedMegatronDatasetBuilder(SFTDataset, sizes, lambda: True, config).build()


def test_sample_trains_on_the_assistant_tokens_and_the_forced_eod(tmp_path: Path) -> None:
    tokenizer = WordTokenizer()
    path = write_jsonl(tmp_path / "chat.jsonl", [chat("be brief", "hi", "hello there")])
    (train, _, _) = build(sft_config(path, tokenizer), [1, 0, 0])
    sample = train[0]
    be, brief, hi, hello, there = (tokenizer.ids[w] for w in "be brief hi hello there".split())
    assert sample["tokens"].tolist() == [be, brief, hi, hello, there, EOD, PAD, PAD]
    assert sample["labels"].tolist() == [
        IGNORE_INDEX,
        IGNORE_INDEX,
        hello,
        there,
        EOD,
        PAD,
        PAD,
        PAD,
    ]
    assert sample["loss_mask"].tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    assert sample["loss_mask"].dtype == torch.float32
    assert sample["position_ids"].tolist() == list(range(8))
    assert sample["attention_mask"].shape == (1, 8, 8)
    assert bool(sample["attention_mask"][0, 0, 1]) and not bool(sample["attention_mask"][0, 1, 0])


def test_long_conversations_are_cut_to_leave_room_for_the_eod(tmp_path: Path) -> None:
    tokenizer = WordTokenizer()
    path = write_jsonl(tmp_path / "chat.jsonl", [chat("a b", "c", "d e f g h")])
    (train, _, _) = build(sft_config(path, tokenizer, sequence_length=4), [1, 0, 0])
    sample = train[0]
    a, b, c = (tokenizer.ids[w] for w in "abc")
    assert sample["tokens"].tolist() == [a, b, c, EOD]
    assert sample["labels"].tolist() == [IGNORE_INDEX, IGNORE_INDEX, EOD, PAD]
    assert sample["loss_mask"].tolist() == [0, 0, 1, 0]


def test_without_a_forced_eod_the_conversation_is_only_padded(tmp_path: Path) -> None:
    tokenizer = WordTokenizer(force_eod=False)
    path = write_jsonl(tmp_path / "chat.jsonl", [chat("s", "u", "answer")])
    config = sft_config(path, tokenizer, sequence_length=5, create_attention_mask=False)
    sample = build(config, [1, 0, 0])[0][0]
    s, u, answer = (tokenizer.ids[w] for w in ("s", "u", "answer"))
    assert sample["tokens"].tolist() == [s, u, answer, PAD, PAD]
    assert sample["labels"].tolist() == [IGNORE_INDEX, answer, PAD, PAD, PAD]
    assert sample["loss_mask"].tolist() == [0, 1, 0, 0, 0]
    assert "attention_mask" not in sample


def test_splits_take_line_ranges_in_file_order_and_wrap_around(tmp_path: Path) -> None:
    tokenizer = WordTokenizer(force_eod=False)
    records = [chat("sys", "user", f"answer{i}") for i in range(10)]
    path = write_jsonl(tmp_path / "chat.jsonl", records, blank_lines=True)
    train, valid, test = build(sft_config(path, tokenizer, split="80,20,0"), [12, 3, 0])
    assert test is None and len(train) == 12 and len(valid) == 3

    def answer(sample) -> int:
        return int(sample["tokens"][2])

    ids = tokenizer.ids
    assert [answer(train[i]) for i in range(12)] == [ids[f"answer{i % 8}"] for i in range(12)]
    assert [answer(valid[i]) for i in range(3)] == [ids["answer8"], ids["answer9"], ids["answer8"]]
    assert json.loads(train.unique_description)["class"] == "SFTDataset"


def test_a_data_loader_batches_samples_and_the_dataset_pickles(tmp_path: Path) -> None:
    tokenizer = WordTokenizer()
    path = write_jsonl(tmp_path / "chat.jsonl", [chat("s", "u", f"a{i}") for i in range(6)])
    train = build(sft_config(path, tokenizer), [6, 0, 0])[0]
    loader = build_pretraining_data_loader(
        train,
        2,
        dataloader_type="single",
        micro_batch_size=2,
        data_parallel_rank=0,
        data_parallel_size=1,
        num_workers=0,
    )
    batch = next(iter(loader))
    assert batch["tokens"].shape == (2, 8) and batch["attention_mask"].shape == (2, 1, 8, 8)
    assert batch["tokens"][0, 2] == tokenizer.ids["a2"]
    clone = pickle.loads(pickle.dumps(train))  # what DataLoader workers receive under spawn
    assert clone[5]["tokens"].tolist() == train[5]["tokens"].tolist()


def test_bad_lines_and_flags_fail_with_one_clear_message(tmp_path: Path) -> None:
    tokenizer = WordTokenizer()
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(chat("s", "u", "a")) + "\n{not json\n" + '{"text": "x"}\n')
    low = SFTLowLevelDataset(str(path))
    with pytest.raises(ValueError, match=r"chat.jsonl:2: not JSON"):
        low[1]
    with pytest.raises(
        ValueError, match=r'chat.jsonl:3: expected an object with a non-empty "messages"'
    ):
        low[2]
    with pytest.raises(ValueError, match="no such JSONL file"):
        SFTLowLevelDataset(str(tmp_path / "missing.jsonl"))
    indices = np.arange(1, dtype=np.int32)
    with pytest.raises(ValueError, match="--reset-position-ids"):
        SFTDataset(
            low,
            str(path),
            indices,
            1,
            Split.train,
            sft_config(str(path), tokenizer, reset_position_ids=True),
        )

    class NoPad(WordTokenizer):
        pad = None

    with pytest.raises(ValueError, match="pad id"):
        SFTDataset(low, str(path), indices, 1, Split.train, sft_config(str(path), NoPad()))


def test_real_sft_tokenizer_masks_prompts_and_forces_eod(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from gpt_tokenizers import SFTPromptConfig, TokenizerFlags, build_tokenizer

    specials = ["<unk>", "</s>", "<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_233>"]
    words = ["System", "User", "Assistant", "be", "brief", "hi", "hello", "there"]
    vocab = {token: i for i, token in enumerate(specials + words)}
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    model.add_special_tokens(specials)
    model.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "</s>", "unk_token": "<unk>"}), encoding="utf-8"
    )
    tokenizer = build_tokenizer(
        TokenizerFlags(tokenizer_type="SFTTokenizer", tokenizer_model=str(tmp_path)),
        sft_prompt=SFTPromptConfig(sft_tokenizer_prompt_format="nemotron-h-aligned"),
    )
    path = write_jsonl(tmp_path / "chat.jsonl", [chat("be brief", "hi", "hello there")])
    config = sft_config(
        path,
        tokenizer,
        sequence_length=16,
        tokenizer_unique_identifiers=tokenizer.unique_identifiers,
    )
    sample = build(config, [1, 0, 0])[0][0]
    eos, pad = vocab["</s>"], vocab["<SPECIAL_233>"]
    trained = sample["labels"][sample["loss_mask"] == 1].tolist()
    assert trained == [vocab["hello"], vocab["there"], eos]
    assert sample["tokens"].tolist()[-3:] == [pad, pad, pad]
    assert (sample["labels"] == IGNORE_INDEX).sum() > 0
