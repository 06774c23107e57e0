"""Tokenizers whose "text" is already ids: space-separated integers (mock data, tests, benchmarks).

v0.14 semantics: `--vocab-size V` gives vocab_size V+1 and eod = V (the id after the last
real token). core_v0.18 later changed this to V and V-1; we follow v0.14.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Tokenizer
from .errors import TokenizerError

IMAGE_TOKEN = "<image>"
"""The multimodal image placeholder (the original's llava IMAGE_TOKEN)."""

IMAGE_TOKEN_INDEX = -200
"""The original's DEFAULT_IMAGE_TOKEN_INDEX: the id an image placeholder becomes."""


def _parse_ids(text: str, tokenizer: str) -> list[int]:
    # The original splits on single spaces, so doubled spaces are errors there too. An empty
    # text is no ids (the original's int('') fails there), so preprocessing records it as an
    # empty document, as it does for every other tokenizer's empty text.
    if not text:
        return []
    try:
        return [int(x) for x in text.split(" ")]
    except ValueError as e:
        raise TokenizerError(
            f"{tokenizer}: text must be token ids separated by single spaces, got {text[:40]!r}"
        ) from e


def _offsets(ids: Sequence[int]) -> list[int]:
    out, start = [], 0
    for i in ids:
        out.append(start)
        start += 1 + len(str(i))
    return out


class NullTokenizer(Tokenizer):
    """Ids in, ids out; the only special id is eod = vocab_size_arg. No vocab, as the original."""

    original_class_name = "_NullTokenizer"

    def __init__(self, vocab_size: int) -> None:
        super().__init__(None, vocab_size=vocab_size)
        eod = int(vocab_size)  # the id after the last real token
        self._vocab_size = eod + 1
        self._set_special_ids(eod=eod, eos=eod, cls=-1, sep=-1, mask=-1)

    def tokenize(self, text: str) -> list[int]:
        return _parse_ids(text, type(self).__name__)

    def detokenize(self, ids: Sequence[int]) -> str:
        return " ".join(str(i) for i in ids)

    def offsets(self, ids: Sequence[int], text: str) -> list[int]:
        return _offsets(ids)

    @property
    def additional_special_tokens_ids(self) -> None:
        return None


class NullMultimodalTokenizer(NullTokenizer):
    """NullTokenizer that also maps the image placeholder to the image token index."""

    original_class_name = "_NullMultimodalTokenizer"

    def __init__(
        self,
        vocab_size: int,
        image_token: str | None = None,
        image_token_id: int | None = None,
    ) -> None:
        super().__init__(vocab_size)
        self._image_token = IMAGE_TOKEN if image_token is None else image_token
        self._image_token_id = IMAGE_TOKEN_INDEX if image_token_id is None else image_token_id

    def convert_tokens_to_ids(self, tokens: str) -> int | list[int]:
        """Ids (or the image placeholder) separated by two spaces, as the original splits them."""
        ids = [
            self._image_token_id if t == self._image_token else int(t) for t in tokens.split("  ")
        ]
        return ids if len(ids) > 1 else ids[0]
