"""GPT2BPETokenizer: byte-level BPE from a GPT-2 vocab.json and merges.txt, run by tiktoken.

GPT-2 merges pairs in merges.txt order; tiktoken merges the adjacent pair whose concatenation
has the lowest rank. Giving every merge result its merge position as rank makes the two agree
on vocabularies produced by BPE training (checked against HF's GPT2TokenizerFast in the
tests), while tiktoken's Rust core makes preprocessing fast. As in the original, text that
looks like a special token (``<|endoftext|>``) is encoded as ordinary text, and eod is the id
of ``<|endoftext|>`` in the vocab.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import tiktoken

from .base import Tokenizer
from .errors import TokenizerError, read_json, read_text

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""The pre-tokenization regex of GPT-2 (contractions, letters, digits, other, whitespace)."""

EOD_TOKEN = "<|endoftext|>"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used to spell byte-level tokens in vocab.json.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes are given the code
    points 256, 257, ... in byte order, so no token contains whitespace or control characters.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _load_vocab(path: str) -> dict[str, int]:
    vocab = read_json("--vocab-file", path)
    if not isinstance(vocab, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()
    ):
        raise TokenizerError(f"--vocab-file: {path} is not a JSON object of token -> id")
    return vocab


def _load_merges(path: str) -> list[tuple[str, str]]:
    # As the original: drop the first line (the "#version" header) and the last (empty) line.
    lines = read_text("--merge-file", path).split("\n")[1:-1]
    merges = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


class GPT2BPETokenizer(Tokenizer):
    """GPT-2 byte-level BPE; eod = eos = the id of <|endoftext|>."""

    original_class_name = "_GPT2BPETokenizer"

    def __init__(self, vocab_file: str, merge_file: str) -> None:
        super().__init__(vocab_file, merge_file)
        self._vocab = encoder = _load_vocab(vocab_file)
        self._inv_vocab = {i: t for t, i in encoder.items()}
        if EOD_TOKEN not in encoder:
            raise TokenizerError(f"--vocab-file: {vocab_file} has no {EOD_TOKEN} token")
        self._set_special_ids(eod=encoder[EOD_TOKEN], eos=encoder[EOD_TOKEN])

        byte_decoder = {c: b for b, c in bytes_to_unicode().items()}

        def spell(token: str) -> bytes | None:
            try:
                return bytes(byte_decoder[c] for c in token)
            except KeyError:
                return None

        # Single bytes keep their vocab ids; merge results are ranked by merge position.
        singles: dict[bytes, int] = {}
        for b in range(256):
            c = bytes_to_unicode()[b]
            if c not in encoder:
                raise TokenizerError(
                    f"--vocab-file: {vocab_file} has no token for byte 0x{b:02x} "
                    "(GPT2BPETokenizer needs a byte-level vocabulary)"
                )
            singles[bytes([b])] = encoder[c]
        merged: dict[bytes, int] = {}  # bytes -> vocab id, in merge order
        for line, (a, b) in enumerate(_load_merges(merge_file), start=2):
            token = a + b
            token_bytes = spell(token)
            if token not in encoder or token_bytes is None:
                raise TokenizerError(
                    f"--merge-file: merge {a!r} {b!r} on line {line} of {merge_file} makes "
                    f"{token!r}, which is not a byte-level token of --vocab-file"
                )
            merged.setdefault(token_bytes, encoder[token])

        merged_ids = list(merged.values())
        in_merge_order = all(x < y for x, y in zip(merged_ids, merged_ids[1:]))
        if in_merge_order:
            ranks = {**singles, **merged}
            self._rank_to_id: list[int] | None = None
        else:
            # Vocab ids disagree with merge order: rank by merge position, map ranks to ids.
            ranks = {bytes([b]): b for b in range(256)}
            ranks.update({t: 256 + i for i, t in enumerate(merged)})
            self._rank_to_id = [singles[bytes([b])] for b in range(256)] + merged_ids
        self._encoding = tiktoken.Encoding(
            name="gpt2-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={}
        )
        # Decoding spells each id back to bytes; ids outside the byte alphabet decode as UTF-8.
        self._id_bytes = {i: spell(t) or t.encode("utf-8") for t, i in encoder.items()}

    def tokenize(self, text: str) -> list[int]:
        ranks = self._encoding.encode_ordinary(text)
        if self._rank_to_id is None:
            return ranks
        lut = self._rank_to_id
        return [lut[r] for r in ranks]

    def detokenize(self, ids: Sequence[int]) -> str:
        try:
            data = b"".join(self._id_bytes[int(i)] for i in ids)
        except KeyError as e:
            raise TokenizerError(
                f"GPT2BPETokenizer: token id {e.args[0]} is not in the vocab"
            ) from e
        return data.decode("utf-8", errors="replace")
