"""GPT2BPETokenizer gives HF GPT2TokenizerFast's ids on the same vocab.json/merges.txt."""

from __future__ import annotations

import json
import random

import pytest
from gpt_tokenizers import TokenizerError, TokenizerFlags, build_tokenizer


def _build(vocab: str, merges: str):
    return build_tokenizer(
        TokenizerFlags(tokenizer_type="GPT2BPETokenizer", vocab_file=vocab, merge_file=merges)
    )


@pytest.fixture(scope="module")
def hf_gpt2(gpt2_files):
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast(gpt2_files[0], gpt2_files[1])


def test_ids_equal_hf_gpt2_fast_on_varied_text(gpt2_files, hf_gpt2, sample_texts):
    tok = _build(*gpt2_files)
    for text in sample_texts:
        assert tok.tokenize(text) == hf_gpt2(text)["input_ids"], repr(text)


def test_ids_equal_hf_on_adversarial_fragments(gpt2_files, hf_gpt2):
    # Word pieces glued in random orders exercise merges that compete inside one word.
    tok = _build(*gpt2_files)
    rng = random.Random(0)
    frags = ["t", "th", "the", "he", "e", "r", "er", "ot", "bro", "a", "at", "ba", " ", "  ", ".",
             "é", "ß", "日", "本", "1", "23", "\n", "'s", "'"]  # fmt: skip
    texts = ["".join(rng.choice(frags) for _ in range(rng.randint(1, 14))) for _ in range(3000)]
    mismatched = [t for t in texts if tok.tokenize(t) != hf_gpt2(t)["input_ids"]]
    assert mismatched == []


def test_detokenize_round_trips_text(gpt2_files, sample_texts):
    tok = _build(*gpt2_files)
    for text in sample_texts:
        assert tok.detokenize(tok.tokenize(text)) == text


def test_eod_is_endoftext_and_vocab_size_is_vocab_json_length(gpt2_files):
    tok = _build(*gpt2_files)
    vocab = json.load(open(gpt2_files[0], encoding="utf-8"))
    assert tok.eod == tok.eos == vocab["<|endoftext|>"]
    assert tok.vocab_size == len(vocab)
    assert tok.detokenize([tok.eod]) == "<|endoftext|>"


def test_endoftext_in_text_is_ordinary_text_as_in_the_original(gpt2_files):
    tok = _build(*gpt2_files)
    ids = tok.tokenize("a<|endoftext|>b")
    assert tok.eod not in ids
    assert tok.detokenize(ids) == "a<|endoftext|>b"


def test_vocab_ids_out_of_merge_order_still_match_hf(tmp_path, gpt2_files, sample_texts):
    # Renumber the merged tokens in reverse: tiktoken ranks must follow merges.txt, not the ids.
    from transformers import GPT2TokenizerFast

    vocab = json.load(open(gpt2_files[0], encoding="utf-8"))
    merged = sorted((i, t) for t, i in vocab.items() if i > 256)
    ids = [i for i, _ in merged]
    vocab.update({t: i for (_, t), i in zip(merged, reversed(ids))})
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tok = _build(str(tmp_path / "vocab.json"), gpt2_files[1])
    hf = GPT2TokenizerFast(str(tmp_path / "vocab.json"), gpt2_files[1])
    for text in sample_texts:
        assert tok.tokenize(text) == hf(text)["input_ids"], repr(text)
        assert tok.detokenize(tok.tokenize(text)) == text


def test_unique_identifiers_name_the_original_class_and_both_files(gpt2_files):
    tok = _build(*gpt2_files)
    assert tok.unique_identifiers == {
        "class": "_GPT2BPETokenizer",
        "tokenizer_path": [gpt2_files[0], gpt2_files[1]],
    }


def test_missing_merge_file_is_one_line_error_naming_flag_and_path(gpt2_files, tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(TokenizerError, match=f"^--merge-file: no such file: {missing}$"):
        _build(gpt2_files[0], missing)
    with pytest.raises(
        TokenizerError, match="^--tokenizer-type GPT2BPETokenizer needs --merge-file$"
    ):
        build_tokenizer(TokenizerFlags(tokenizer_type="GPT2BPETokenizer", vocab_file=gpt2_files[0]))


def test_vocab_without_byte_tokens_is_rejected(tmp_path, gpt2_files):
    (tmp_path / "vocab.json").write_text(json.dumps({"<|endoftext|>": 0, "a": 1}), encoding="utf-8")
    with pytest.raises(TokenizerError, match="has no token for byte 0x00"):
        _build(str(tmp_path / "vocab.json"), gpt2_files[1])


def test_vocab_that_is_not_json_is_rejected(tmp_path, gpt2_files):
    (tmp_path / "vocab.json").write_text("not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match="^--vocab-file: not JSON"):
        _build(str(tmp_path / "vocab.json"), gpt2_files[1])
