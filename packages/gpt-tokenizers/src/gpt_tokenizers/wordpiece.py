"""BERT's text pipeline: basic tokenization (cleanup, CJK spacing, optional lower-casing with
accent stripping, punctuation splitting) followed by greedy longest-match WordPiece.

Written to the behaviour of Google's BERT tokenizer that the original vendors, so ids match
HF's BertTokenizerFast on ordinary text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from .cleanup import clean_up_tokenization

_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    # Tab, newline and carriage return count as whitespace, not control.
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch: str) -> bool:
    # All non-alphanumeric printable ASCII counts as punctuation, plus Unicode class P*.
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _clean(text: str) -> str:
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        out.append(" " if _is_whitespace(ch) else ch)
    return "".join(out)


def _space_cjk(text: str) -> str:
    return "".join(f" {ch} " if _is_cjk(ord(ch)) else ch for ch in text)


def _strip_accents(text: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn"
    )


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for ch in word:
        if _is_punctuation(ch):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(ch)
        else:
            current.append(ch)
    if current:
        pieces.append("".join(current))
    return pieces


def basic_tokenize(text: str, lower_case: bool) -> list[str]:
    """Split text into words and punctuation marks, the way BERT prepares it for WordPiece."""
    words = _space_cjk(_clean(text)).split()
    out: list[str] = []
    for word in words:
        if lower_case:
            word = _strip_accents(word.lower())
        out.extend(_split_punctuation(word))
    # Accent stripping can leave empty words or inner whitespace; re-split like the original.
    return " ".join(out).split()


def wordpiece(
    word: str,
    vocab: Mapping[str, int],
    unk_token: str = "[UNK]",
    max_input_chars_per_word: int = 200,
) -> list[str]:
    """Greedy longest-match-first pieces of one word; the whole word is [UNK] if any part fails."""
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces: list[str] = []
    start = 0
    while start < len(word):
        end = len(word)
        piece = None
        while start < end:
            candidate = word[start:end] if start == 0 else "##" + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def join_wordpieces(tokens: list[str]) -> str:
    """Tokens back to text: glue ## continuations and undo the usual spacing around punctuation."""
    return clean_up_tokenization(" ".join(tokens).replace(" ##", "").strip())
