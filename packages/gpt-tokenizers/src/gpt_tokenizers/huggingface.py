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
        self._vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        special = self._files.special_id
        self._set_special_ids(
            eod=special("eos_token"), bos=special("bos_token"), pad=special("pad_token")
        )

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
    def decoder(self) -> dict[int, str]:
        """The original's alias of inv_vocab (it has no `encoder`)."""
        return self.inv_vocab
