"""BertWordPieceLowerCase/Case against transformers' BertTokenizerFast on the same vocab.txt."""

from __future__ import annotations

import pytest
from gpt_tokenizers import TokenizerError, TokenizerFlags, build_tokenizer


def _build(kind: str, vocab: str, extra: int = 0):
    return build_tokenizer(
        TokenizerFlags(tokenizer_type=kind, vocab_file=vocab, vocab_extra_ids=extra)
    )


@pytest.mark.parametrize(
    "kind, lower", [("BertWordPieceLowerCase", True), ("BertWordPieceCase", False)]
)
def test_ids_equal_bert_tokenizer_fast(bert_vocab, sample_texts, kind, lower):
    from transformers import BertTokenizerFast

    hf = BertTokenizerFast(bert_vocab, do_lower_case=lower)
    tok = _build(kind, bert_vocab)
    for text in [*sample_texts, "ÉCOLE Über NAÏVE", "Straße"]:
        assert tok.tokenize(text) == hf(text, add_special_tokens=False)["input_ids"], repr(text)


def test_lower_case_strips_accents_and_case_keeps_them(bert_vocab):
    lower = _build("BertWordPieceLowerCase", bert_vocab)
    cased = _build("BertWordPieceCase", bert_vocab)
    assert lower.tokenize("Café") == lower.tokenize("cafe")
    assert cased.tokenize("Café") != cased.tokenize("cafe")


def test_specials_bos_eos_and_extra_ids_follow_the_vocab(bert_vocab):
    lines = open(bert_vocab, encoding="utf-8").read().split("\n")
    n = len([t for t in lines if t])
    tok = _build("BertWordPieceLowerCase", bert_vocab, extra=2)
    assert (tok.pad, tok.cls, tok.sep, tok.mask) == tuple(
        lines.index(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t != "[UNK]"
    )
    assert (tok.bos, tok.eos, tok.eod) == (n, n + 1, n + 1)
    assert tok.additional_special_tokens_ids == [n + 2, n + 3]
    assert tok.vocab_size == n + 4
    assert tok.unique_identifiers == {
        "class": "_BertWordPieceTokenizer",
        "tokenizer_path": [bert_vocab],
        "lower_case": "True",
        "vocab_extra_ids": "2",
    }


def test_detokenize_joins_wordpieces(bert_vocab):
    tok = _build("BertWordPieceLowerCase", bert_vocab)
    assert tok.detokenize(tok.tokenize("The brother bathes, then there!")) == (
        "the brother bathes, then there!"
    )
    assert tok.decode_token_ids([tok.cls, *tok.tokenize("hello world"), tok.pad]) == " hello world"


def test_vocab_without_bert_specials_is_rejected(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(
        TokenizerError, match=r"lacks the BERT special tokens \[CLS\] \[SEP\] \[MASK\]$"
    ):
        _build("BertWordPieceCase", str(vocab))
    with pytest.raises(TokenizerError, match="^--vocab-file: no such file: "):
        _build("BertWordPieceCase", str(tmp_path / "missing.txt"))
