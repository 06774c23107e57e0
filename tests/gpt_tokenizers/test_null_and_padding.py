"""NullTokenizer (v0.14 semantics) and the vocab padding the model width comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpt_tokenizers import (
    TokenizerError,
    TokenizerFlags,
    VocabPaddingConfig,
    build_tokenizer,
    padded_vocab_message,
    padded_vocab_size,
    resolve_padded_vocab_size,
)

GOLDEN_CACHE = Path("corpus", "tiny_text_document", "cache", "GPTDataset_indices")


def test_null_tokenizer_reads_ids_and_puts_eod_after_the_vocab():
    tok = build_tokenizer(TokenizerFlags(tokenizer_type="NullTokenizer", vocab_size=1000))
    assert tok.tokenize("5 17 999") == [5, 17, 999]
    assert tok.detokenize([5, 17, 999]) == "5 17 999"
    assert (tok.vocab_size, tok.eod, tok.eos) == (1001, 1000, 1000)
    assert (tok.cls, tok.sep, tok.mask) == (-1, -1, -1)
    assert tok.offsets([5, 17, 999], "5 17 999") == [0, 2, 5]
    for name in ("pad", "bos"):
        with pytest.raises(NotImplementedError):
            getattr(tok, name)


def test_null_tokenizer_rejects_text_that_is_not_single_spaced_ids():
    tok = build_tokenizer(TokenizerFlags(tokenizer_type="NullTokenizer", vocab_size=10))
    for text in ("1  2", " 1", "1 ", " "):
        with pytest.raises(TokenizerError, match="single spaces"):
            tok.tokenize(text)


def test_null_tokenizer_reads_an_empty_text_as_no_ids():
    for kind in ("NullTokenizer", "NullMultimodalTokenizer"):
        tok = build_tokenizer(TokenizerFlags(tokenizer_type=kind, vocab_size=10))
        assert tok.tokenize("") == []
        assert tok.detokenize([]) == ""
    with pytest.raises(TokenizerError, match="needs --vocab-size"):
        build_tokenizer(TokenizerFlags(tokenizer_type="NullTokenizer"))


def test_null_tokenizer_identity_matches_the_originals_cache_description(golden_dir: Path):
    tok = build_tokenizer(TokenizerFlags(tokenizer_type="NullTokenizer", vocab_size=1000))
    # The 8-sample train index was written by the original pretrain_gpt run itself.
    cache = golden_dir / GOLDEN_CACHE
    descriptions = [json.loads(p.read_text()) for p in cache.glob("*-train-description.txt")]
    (description,) = [d for d in descriptions if d["num_samples"] == 8]
    assert tok.unique_identifiers == description["tokenizer"]
    assert tok.unique_description == json.dumps(description["tokenizer"], indent=4)


def test_null_multimodal_tokenizer_maps_the_image_placeholder():
    tok = build_tokenizer(TokenizerFlags(tokenizer_type="NullMultimodalTokenizer", vocab_size=50))
    assert (tok.vocab_size, tok.eod) == (51, 50)
    assert tok.convert_tokens_to_ids("3  <image>  7") == [3, -200, 7]
    assert tok.convert_tokens_to_ids("4") == 4
    assert tok.unique_identifiers["class"] == "_NullMultimodalTokenizer"


@pytest.mark.parametrize(
    "orig, divisible, tp, padded",
    [
        (50257, 128, 1, 50304),
        (1001, 128, 1, 1024),
        (1024, 128, 1, 1024),
        (50257, 128, 8, 51200),
        (7, 1, 1, 7),
    ],
)
def test_padded_vocab_size_rounds_up_to_divisor_times_tp(orig, divisible, tp, padded):
    assert padded_vocab_size(orig, divisible, tp) == padded


def test_padded_vocab_message_is_the_originals_line():
    assert padded_vocab_message(50257, 50304) == (
        " > padded vocab (size: 50257) with 47 dummy tokens (new size: 50304)"
    )


def test_resolve_padded_vocab_size_prefers_the_given_size_and_logs_otherwise():
    tok = build_tokenizer(TokenizerFlags(tokenizer_type="NullTokenizer", vocab_size=1000))
    lines: list[str] = []
    cfg = TokenizerFlags(tokenizer_type="NullTokenizer", vocab_size=1000)
    padding = VocabPaddingConfig()
    resolved = resolve_padded_vocab_size(
        cfg, padding, tok, tensor_model_parallel_size=2, log=lines.append
    )
    assert resolved == 1024
    assert lines == [" > padded vocab (size: 1001) with 23 dummy tokens (new size: 1024)"]
    by_64 = VocabPaddingConfig(make_vocab_size_divisible_by=64)
    assert resolve_padded_vocab_size(cfg, by_64, tok, tensor_model_parallel_size=1) == 1024
    assert resolve_padded_vocab_size(cfg, by_64, tok, tensor_model_parallel_size=3) == 1152
    fixed = TokenizerFlags(tokenizer_type="NullTokenizer", vocab_size=1000, padded_vocab_size=1100)
    assert resolve_padded_vocab_size(fixed, padding, tok, tensor_model_parallel_size=2) == 1100
    with pytest.raises(TokenizerError, match="--make-vocab-size-divisible-by"):
        padded_vocab_size(10, 0, 1)
