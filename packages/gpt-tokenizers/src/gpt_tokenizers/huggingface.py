"""HuggingFaceTokenizer: a local HF fast tokenizer, with the ids transformers' AutoTokenizer gives.

eod is the tokenizer's eos token, bos and pad its named tokens (None when it has none), and
vocab_size is len(tokenizer): the model vocab plus added tokens. Like the original it offers
no `eos` property (use `eod`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Tokenizer
from .hf_files import decode, load_hf_tokenizer


class HuggingFaceTokenizer(Tokenizer):
    """A tokenizer.json (plus its config files) loaded with the `tokenizers` library."""

    original_class_name = "_HuggingFaceTokenizer"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._files = load_hf_tokenizer(path, "--tokenizer-type HuggingFaceTokenizer")
        self._tokenizer = self._files.tokenizer
        self._vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        self._inv_vocab = {i: t for t, i in self._vocab.items()}

    def tokenize(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=True).ids

    def detokenize(self, ids: Sequence[int]) -> str:
        return decode(self._files, list(ids))

    def offsets(self, ids: Sequence[int], text: str) -> list[int]:
        # Re-tokenize `text`; tokens without a character span (added specials) start where
        # the previous token ended.
        encoding = self._tokenizer.encode(text, add_special_tokens=True)
        offsets, next_start = [], 0
        for i in range(len(ids)):
            span = encoding.token_to_chars(i) if i < len(encoding.ids) else None
            if span is not None:
                offsets.append(span[0])
                next_start = span[1]
            else:
                offsets.append(next_start)
        return offsets

    @property
    def vocab(self) -> dict[str, int]:
        return self._vocab

    @property
    def inv_vocab(self) -> dict[int, str]:
        return self._inv_vocab

    @property
    def decoder(self) -> dict[int, str]:
        return self._inv_vocab

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def eod(self) -> int | None:
        return self._files.special_id("eos_token")

    @property
    def bos(self) -> int | None:
        return self._files.special_id("bos_token")

    @property
    def pad(self) -> int | None:
        return self._files.special_id("pad_token")
