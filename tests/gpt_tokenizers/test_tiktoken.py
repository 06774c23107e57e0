"""TikTokenizer against a tiktoken.Encoding built from the same rank file."""

from __future__ import annotations

import json

import pytest
import tiktoken
from gpt_tokenizers import TokenizerError, TokenizerFlags, build_tokenizer
from gpt_tokenizers.tiktokenizer import PATTERN_TIKTOKEN_V1, PATTERN_TIKTOKEN_V2

NUM_SPECIAL = 10


def _cfg(path: str, n_ranks: int, pattern: str = "v2", **kw) -> TokenizerFlags:
    return TokenizerFlags(
        tokenizer_type="TikTokenizer",
        tokenizer_model=path,
        tiktoken_pattern=pattern,
        vocab_size=kw.pop("vocab_size", NUM_SPECIAL + n_ranks),
        tiktoken_num_special_tokens=kw.pop("num_special", NUM_SPECIAL),
        **kw,
    )


def _reference(ranks: dict[bytes, int], pattern: str) -> tiktoken.Encoding:
    return tiktoken.Encoding("ref", pat_str=pattern, mergeable_ranks=dict(ranks), special_tokens={})


@pytest.mark.parametrize("pattern", ["v1", "v2"])
def test_ids_are_tiktoken_ranks_shifted_by_the_special_tokens(
    tiktoken_rank_file, sample_texts, pattern
):
    path, ranks = tiktoken_rank_file
    tok = build_tokenizer(_cfg(path, len(ranks), pattern))
    ref = _reference(ranks, PATTERN_TIKTOKEN_V1 if pattern == "v1" else PATTERN_TIKTOKEN_V2)
    for text in sample_texts:
        assert tok.tokenize(text) == [r + NUM_SPECIAL for r in ref.encode_ordinary(text)]
        assert tok.detokenize(tok.tokenize(text)) == text


def test_special_token_layout_follows_the_original(tiktoken_rank_file):
    path, ranks = tiktoken_rank_file
    tok = build_tokenizer(
        _cfg(path, len(ranks), tiktoken_special_tokens=["<unk>", "<s>", "</s>", "<x>"])
    )
    assert (tok.unk, tok.bos, tok.eos, tok.eod) == (0, 1, 2, 2)
    assert tok.vocab["<x>"] == 3 and tok.vocab["<SPECIAL_4>"] == 4 and tok.vocab["<SPECIAL_9>"] == 9
    assert tok.vocab[b"a"] == ord("a") + NUM_SPECIAL
    assert tok.vocab_size == NUM_SPECIAL + len(ranks)
    assert tok.tokenize("hi", bos=True, eos=True)[0] == 1 and tok.tokenize("hi", eos=True)[-1] == 2
    assert tok.detokenize([1, *tok.tokenize("hi"), 2]) == "<s>hi</s>"
    with pytest.raises(NotImplementedError):
        _ = tok.pad  # the original never sets a pad id for TikTokenizer


def test_vocab_size_cuts_the_rank_file_and_logs_like_the_original(tiktoken_rank_file):
    path, ranks = tiktoken_rank_file
    lines: list[str] = []
    tok = build_tokenizer(_cfg(path, 300, num_special=5, vocab_size=305), log=lines.append)
    assert tok.vocab_size == 305
    assert max(tok.tokenize("the other brother bathes")) < 305
    assert lines == [
        "> building TikTokenizer tokenizer ...",
        "Adding special tokens <SPECIAL_3>, ..., <SPECIAL_4>",
        f"Vocab size: {len(ranks)}",
        "Cutting vocab to first 300 tokens.",
    ]


def test_offsets_are_character_starts_of_each_token(tiktoken_rank_file):
    path, ranks = tiktoken_rank_file
    tok = build_tokenizer(_cfg(path, len(ranks)))
    text = "hello world, the brother's theorem 2024"
    ids = tok.tokenize(text)
    assert tok.offsets(ids, text) == [len(tok.detokenize(ids[:i])) for i in range(len(ids))]
    # A token that starts inside a multi-byte character starts at that character.
    split = [*tok.tokenize("a"), *[b + NUM_SPECIAL for b in "é".encode()], *tok.tokenize("b")]
    assert tok.offsets(split, "aéb") == [0, 1, 1, 2]
    # Bytes that are not valid UTF-8 still get offsets (tiktoken alone would refuse them).
    assert tok.offsets([0xC3 + NUM_SPECIAL, *tok.tokenize("b")], "") == [0, 1]


def test_unique_identifiers_keep_the_original_options(tiktoken_rank_file):
    path, ranks = tiktoken_rank_file
    tok = build_tokenizer(_cfg(path, len(ranks)))
    assert tok.unique_identifiers == {
        "class": "CustomTikTokenizer",
        "tokenizer_path": [path],
        "pattern": PATTERN_TIKTOKEN_V2,
        "vocab_size": str(NUM_SPECIAL + len(ranks)),
        "num_special_tokens": str(NUM_SPECIAL),
        "special_tokens": "None",
    }


def test_bad_settings_and_files_are_one_line_errors(tiktoken_rank_file, tmp_path):
    path, ranks = tiktoken_rank_file
    with pytest.raises(TokenizerError, match=f"has {len(ranks)} ranks but vocab size"):
        build_tokenizer(_cfg(path, len(ranks), vocab_size=NUM_SPECIAL + len(ranks) + 1))
    with pytest.raises(TokenizerError, match="^--tiktoken-pattern must be v1 or v2"):
        build_tokenizer(_cfg(path, len(ranks), pattern="v3"))
    with pytest.raises(TokenizerError, match="must include <unk> <s> </s>"):
        build_tokenizer(_cfg(path, len(ranks), tiktoken_special_tokens=["<s>", "</s>"]))
    wrong = tmp_path / "ranks.json"
    wrong.write_text(json.dumps([{"rank": 0, "token_bytes": "AQ==", "token_str": "x"}]))
    with pytest.raises(TokenizerError, match="must be the single byte 0x00"):
        build_tokenizer(_cfg(str(wrong), 1))
    (tmp_path / "ranks.tiktoken").write_text("")
    with pytest.raises(TokenizerError, match="needs a .json rank file"):
        build_tokenizer(_cfg(str(tmp_path / "ranks.tiktoken"), 1))
