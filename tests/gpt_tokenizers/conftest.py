"""Tiny tokenizers trained on the fly (once per session), in every file format the package reads."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

WORDS = [
    "the", "then", "there", "these", "other", "brother", "bathe", "theorem", "hello", "world",
    "naïve", "café", "straße", "über", "日本語", "中文", "Привет", "mir", "ÉCOLE", "don't",
    "it's", "we've", "12", "345", "2024", "3.14", "x_y", "foo-bar", "camelCase", "HTTPServer",
    "😀", "!!", "...", "?", "(paren)", "$5", "a", "an", "tab\there", "emoji🎉",
]  # fmt: skip

SAMPLE_TEXTS = [
    "Hello world",
    " leading space and trailing space ",
    "multiple   spaces\tand\ttabs",
    "new\nlines\n\nand\r\nwindows",
    "   \n  \n",
    "digits 0123456789 and 3.14159, 1,000,000",
    "unicode: naïve café straße über 日本語 Привет 😀🎉",
    "contractions: don't it's we've I'll they'd she's",
    "punctuation!!! (brackets) [more] {braces} <angle> @#$%^&*",
    "camelCase HTTPServer snake_case kebab-case",
    "the theorem of the brother bathes then there",
    "",
    "a",
    "\u00a0non-breaking\u2009thin spaces",
    "mixed 中文English123混合",
]


def _corpus(n_lines: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    seps = [" ", " ", " ", "  ", "\n", ", ", ". "]
    return [
        "".join(rng.choice(WORDS) + rng.choice(seps) for _ in range(rng.randint(5, 25)))
        for _ in range(n_lines)
    ] + SAMPLE_TEXTS


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return _corpus(400)


@pytest.fixture(scope="session")
def sample_texts() -> list[str]:
    return SAMPLE_TEXTS + _corpus(40, seed=1)


@pytest.fixture(scope="session")
def gpt2_files(tmp_path_factory, corpus) -> tuple[str, str]:
    """vocab.json and merges.txt of a byte-level BPE trained like GPT-2's (eod <|endoftext|>)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    out = tmp_path_factory.mktemp("gpt2")
    vocab, merges = tok.model.save(str(out))
    return vocab, merges


def _bytes_to_unicode() -> dict[int, str]:
    # Independent re-derivation of GPT-2's table for the fixtures (not the package's copy).
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table, n = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


@pytest.fixture(scope="session")
def tiktoken_rank_file(tmp_path_factory, gpt2_files) -> tuple[str, dict[bytes, int]]:
    """The original's JSON rank file (single bytes at ranks 0..255, then merges) and its ranks."""
    vocab_path, merges_path = gpt2_files
    dec = {c: b for b, c in _bytes_to_unicode().items()}
    ranks = {bytes([b]): b for b in range(256)}
    for line in Path(merges_path).read_text(encoding="utf-8").split("\n")[1:]:
        if not line.strip():
            continue
        a, b = line.split()
        token = bytes(dec[c] for c in a + b)
        ranks.setdefault(token, len(ranks))
    entries = [
        {
            "rank": r,
            "token_bytes": base64.b64encode(t).decode("ascii"),
            "token_str": t.decode("utf-8", errors="replace"),
        }
        for t, r in sorted(ranks.items(), key=lambda kv: kv[1])
    ]
    path = tmp_path_factory.mktemp("tiktoken") / "ranks.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path), ranks


def _train_sentencepiece(directory: Path, corpus: list[str], **options) -> str:
    import sentencepiece as spm

    text = directory / "corpus.txt"
    text.write_text("\n".join(line for line in corpus if line.strip()), encoding="utf-8")
    prefix = directory / "sp"
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(prefix),
        vocab_size=500,
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        minloglevel=2,
        **options,
    )
    return str(prefix) + ".model"


@pytest.fixture(scope="session")
def sp_model(tmp_path_factory, corpus) -> str:
    """SentencePiece model with the usual ids: unk 0, bos 1, eos 2, no pad."""
    return _train_sentencepiece(tmp_path_factory.mktemp("sp"), corpus)


@pytest.fixture(scope="session")
def sp_model_with_pad(tmp_path_factory, corpus) -> str:
    """SentencePiece model that has a pad piece: pad 0, unk 1, bos 2, eos 3."""
    return _train_sentencepiece(
        tmp_path_factory.mktemp("sp_pad"), corpus, pad_id=0, unk_id=1, bos_id=2, eos_id=3
    )


@pytest.fixture(scope="session")
def bert_vocab(tmp_path_factory, corpus) -> str:
    """A WordPiece vocab.txt with BERT's special tokens (no [BOS]/[EOS])."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=500,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tok.train_from_iterator(corpus + [t.lower() for t in corpus], trainer)
    out = tmp_path_factory.mktemp("bert")
    (vocab_path,) = tok.model.save(str(out))
    return vocab_path


HF_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>"]


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory, corpus) -> str:
    """A HF tokenizer directory: byte-level BPE that prepends <s>, with tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=HF_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    out = tmp_path_factory.mktemp("hf")
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": {
            "__type": "AddedToken",
            "content": "</s>",
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        },
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "clean_up_tokenization_spaces": False,
        "chat_template": (
            "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] | trim }}</s>\n"
            "{% endfor %}{% if add_generation_prompt %}<s>assistant: {% endif %}"
        ),
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(out)
