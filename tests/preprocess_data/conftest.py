"""Fixtures: a tiny GPT-2 BPE trained on the fly, JSONL writers, the CLI run in-process, and
.bin/.idx images built by hand from the format table (independent of gpt-data's builder)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpt_preprocess_data_app.main import main

WORDS = "the cat sat on a mat and then it ran far away . ! ? , naïve café 42 1999".split()

DTYPE_CODES = {"uint16": (8, "H"), "int32": (4, "i")}


def _spec_files(documents: Sequence[Sequence[Sequence[int]]], dtype: str) -> tuple[bytes, bytes]:
    """(.bin, .idx) bytes for documents given as lists of sequences of token ids, from the spec."""
    code, fmt = DTYPE_CODES[dtype]
    itemsize = struct.calcsize(fmt)
    lengths, pointers, doc_index, data = [], [], [0], b""
    for doc in documents:
        for seq in doc:
            pointers.append(len(data))
            lengths.append(len(seq))
            data += struct.pack(f"<{len(seq)}{fmt}", *seq)
        doc_index.append(len(lengths))
    assert len(data) == sum(lengths) * itemsize
    idx = b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, code, len(lengths), len(doc_index))
    idx += struct.pack(f"<{len(lengths)}i", *lengths)
    idx += struct.pack(f"<{len(pointers)}q", *pointers)
    idx += struct.pack(f"<{len(doc_index)}q", *doc_index)
    return data, idx


def _read_outputs(prefix: str | Path) -> tuple[bytes, bytes]:
    return Path(f"{prefix}.bin").read_bytes(), Path(f"{prefix}.idx").read_bytes()


def _write_jsonl(path: Path, records: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def spec_files() -> Callable[[Sequence[Sequence[Sequence[int]]], str], tuple[bytes, bytes]]:
    """spec_files(documents, dtype) -> the (.bin, .idx) bytes the format table prescribes."""
    return _spec_files


@pytest.fixture(scope="session")
def read_outputs() -> Callable[[str | Path], tuple[bytes, bytes]]:
    """read_outputs(prefix) -> (prefix.bin bytes, prefix.idx bytes)."""
    return _read_outputs


@pytest.fixture(scope="session")
def write_jsonl() -> Callable[[Path, Sequence[object]], Path]:
    """write_jsonl(path, records) -> path, one JSON object per line."""
    return _write_jsonl


@dataclass(frozen=True)
class BPE:
    """A byte-level BPE's files, its flags, and the HF `tokenizers` model that gives expected ids."""

    vocab: str
    merges: str
    model: object

    @property
    def flags(self) -> list[str]:
        return ["--tokenizer-type", "GPT2BPETokenizer", "--vocab-file", self.vocab,
                "--merge-file", self.merges]  # fmt: skip

    @property
    def eod(self) -> int:
        return self.model.token_to_id("<|endoftext|>")

    def encode(self, text: str) -> list[int]:
        return self.model.encode(text).ids


@pytest.fixture(scope="session")
def bpe(tmp_path_factory) -> BPE:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    model = Tokenizer(models.BPE())
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    model.train_from_iterator([" ".join(WORDS)] * 20, trainer)
    out = tmp_path_factory.mktemp("bpe")
    vocab, merges = model.model.save(str(out))
    return BPE(vocab, merges, model)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys) -> Callable[..., Run]:
    """Run the CLI in this process: cli("--input", ...) -> Run(exit code, stdout, stderr)."""

    def run(*argv: str | Path) -> Run:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse errors
            code = exit_.code
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def documents() -> list[str]:
    """Varied texts, one of them empty (an empty document), one with unicode and newlines."""
    return [
        "the cat sat on a mat",
        "and then it ran far away!",
        "",
        "naïve café\n\n42 cats, 1999 mats?",
        "a",
        "the the the cat cat",
    ]
