"""SentencePieceTokenizer, GPTSentencePieceTokenizer and Llama2Tokenizer against sentencepiece itself."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from gpt_tokenizers import TokenizerError, TokenizerFlags, build_tokenizer


def _build(kind: str, model: str, **kw):
    return build_tokenizer(TokenizerFlags(tokenizer_type=kind, tokenizer_model=model, **kw))


def test_gpt_sentencepiece_is_the_plain_model(sp_model, sample_texts):
    sp = spm.SentencePieceProcessor(model_file=sp_model)
    tok = _build("GPTSentencePieceTokenizer", sp_model)
    for text in sample_texts:
        assert tok.tokenize(text) == sp.encode_as_ids(text)
        assert tok.detokenize(tok.tokenize(text)) == sp.decode_ids(sp.encode_as_ids(text))
    assert tok.vocab_size == sp.get_piece_size()
    assert (tok.eod, tok.eos, tok.bos, tok.pad) == (sp.eos_id(), sp.eos_id(), sp.bos_id(), -1)
    assert (tok.cls, tok.sep, tok.mask) == (-1, -1, -1)
    assert tok.additional_special_tokens_ids is None


def test_llama2_prepends_bos_and_uses_model_ids(sp_model, sample_texts):
    sp = spm.SentencePieceProcessor(model_file=sp_model)
    tok = _build("Llama2Tokenizer", sp_model)
    for text in sample_texts:
        assert tok.tokenize(text) == [sp.bos_id(), *sp.encode(text)]
    assert tok.tokenize("hi", bos=False, eos=True) == [*sp.encode("hi"), sp.eos_id()]
    assert tok.vocab_size == sp.get_piece_size()
    assert (tok.bos, tok.eos, tok.eod) == (sp.bos_id(), sp.eos_id(), sp.eos_id())
    with pytest.raises(NotImplementedError):
        _ = tok.pad  # the original's Llama2 pad property fails, so datasets fall back to -1
    assert tok.unique_identifiers == {
        "class": "_Llama2Tokenizer",
        "tokenizer_path": [sp_model],
        "vocab_extra_ids": "0",
    }


def test_text_round_trips_through_sentencepiece_models(sp_model):
    text = "hello world naïve café 日本語 2024 don't"
    for kind in ("GPTSentencePieceTokenizer", "Llama2Tokenizer", "SentencePieceTokenizer"):
        tok = _build(kind, sp_model)
        assert tok.detokenize(tok.tokenize(text)) == text


def test_sentencepiece_tokenizer_appends_bert_specials_after_the_model(sp_model):
    sp = spm.SentencePieceProcessor(model_file=sp_model)
    n = sp.get_piece_size()
    tok = _build("SentencePieceTokenizer", sp_model, vocab_extra_ids=3)
    # <CLS> <SEP> <EOD> <MASK> <PAD> are new; bos/eos are the model's <s> and </s>.
    assert (tok.cls, tok.sep, tok.eod, tok.mask, tok.pad) == (n, n + 1, n + 2, n + 3, n + 4)
    assert (tok.bos, tok.eos) == (sp.bos_id(), sp.eos_id())
    assert tok.additional_special_tokens_ids == [n + 5, n + 6, n + 7]
    assert tok.vocab_size == n + 8
    assert tok.vocab["<extra_id_2>"] == n + 7 and tok.inv_vocab[n + 2] == "<EOD>"


def test_sentencepiece_tokenizer_uses_the_models_pad_piece(sp_model_with_pad):
    sp = spm.SentencePieceProcessor(model_file=sp_model_with_pad)
    n = sp.get_piece_size()
    tok = _build("SentencePieceTokenizer", sp_model_with_pad)
    assert tok.pad == sp.pad_id() == 0
    assert (tok.bos, tok.eos) == (sp.bos_id(), sp.eos_id())
    assert tok.vocab_size == n + 4


def test_special_strings_in_text_become_their_ids(sp_model):
    sp = spm.SentencePieceProcessor(model_file=sp_model)
    tok = _build("SentencePieceTokenizer", sp_model, vocab_extra_ids=1)
    text = "hello<EOD>world <s>x<extra_id_0>"
    expected = [
        *sp.encode_as_ids("hello"),
        tok.eod,
        *sp.encode_as_ids("world "),
        tok.bos,
        *sp.encode_as_ids("x"),
        tok.vocab["<extra_id_0>"],
        *sp.encode_as_ids(""),
    ]
    assert tok.tokenize(text) == expected
    assert tok.detokenize(expected) == "hello <EOD> world <s> x <extra_id_0> "


def test_offsets_are_the_decoded_pieces_byte_begins(sp_model):
    sp = spm.SentencePieceProcessor(model_file=sp_model)
    tok = _build("GPTSentencePieceTokenizer", sp_model)
    ids = tok.tokenize("hello naïve world")
    proto = sp.decode_ids_as_proto(ids)
    assert tok.offsets(ids, "hello naïve world") == [p.begin for p in proto.pieces]
    assert tok.offsets(ids, "hello naïve world")[0] == 0


def test_broken_model_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(TokenizerError, match="^--tokenizer-model: not a SentencePiece model"):
        _build("GPTSentencePieceTokenizer", str(bad))
    with pytest.raises(TokenizerError, match="^--tokenizer-model: no such file: "):
        _build("Llama2Tokenizer", str(tmp_path / "missing.model"))
    with pytest.raises(TokenizerError, match="needs --tokenizer-model$"):
        build_tokenizer(TokenizerFlags(tokenizer_type="SentencePieceTokenizer"))
