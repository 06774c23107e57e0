"""The interface every tokenizer offers, shaped like the original's MegatronLegacyTokenizer.

Optional ids (cls, sep, pad, bos, eos, mask) raise NotImplementedError where the original
tokenizer has no such attribute, because callers such as the GPT dataset probe them with
try/except and fall back (pad = -1) exactly when the original did.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any


class Tokenizer(ABC):
    """Text <-> ids, the special ids, and an identity used to name dataset caches.

    `unique_identifiers` reproduces the original's dict (its class name, the paths it was
    built from, and its options as strings) so cache descriptions and their md5 names match
    the original's byte for byte.
    """

    #: The original's class name, reported in `unique_identifiers["class"]`.
    original_class_name: str = ""

    def __init__(self, *tokenizer_paths: str | None, **tokenizer_options: Any) -> None:
        ids: dict[str, Any] = {
            "class": self.original_class_name or type(self).__name__,
            "tokenizer_path": list(tokenizer_paths),
        }
        for name, value in tokenizer_options.items():
            ids[name] = str(value)
        self._unique_identifiers = ids

    @property
    def unique_identifiers(self) -> dict[str, Any]:
        """Class name, source paths and options (as strings), in the original's key order."""
        return dict(self._unique_identifiers)

    @property
    def unique_description(self) -> str:
        """`unique_identifiers` as the original serialises it (json, indent 4)."""
        return json.dumps(self._unique_identifiers, indent=4)

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Convert text to token ids."""

    def detokenize(self, ids: Sequence[int]) -> str:
        """Convert token ids back to text."""
        raise NotImplementedError(f"{type(self).__name__} has no method 'detokenize'")

    def offsets(self, ids: Sequence[int], text: str) -> list[int]:
        """Start offset in `text` of each token in `ids` (where the original implements it)."""
        raise NotImplementedError(f"{type(self).__name__} has no method 'offsets'")

    @property
    @abstractmethod
    def vocab(self) -> Mapping[Any, int]:
        """Token -> id."""

    @property
    @abstractmethod
    def inv_vocab(self) -> Mapping[int, Any]:
        """Id -> token."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included, before padding."""

    def _missing(self, name: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} has no attribute '{name}'")

    @property
    def cls(self) -> int:
        """The CLS token id."""
        raise self._missing("cls")

    @property
    def sep(self) -> int:
        """The SEP token id."""
        raise self._missing("sep")

    @property
    def pad(self) -> int:
        """The PAD token id."""
        raise self._missing("pad")

    @property
    def eod(self) -> int:
        """The end-of-document id appended by preprocessing (`--append-eod`)."""
        raise self._missing("eod")

    @property
    def bos(self) -> int:
        """The beginning-of-sequence id."""
        raise self._missing("bos")

    @property
    def eos(self) -> int:
        """The end-of-sequence id."""
        raise self._missing("eos")

    @property
    def mask(self) -> int:
        """The MASK token id."""
        raise self._missing("mask")
