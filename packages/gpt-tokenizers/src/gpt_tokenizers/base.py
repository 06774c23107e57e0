"""The interface every tokenizer offers, shaped like the original's MegatronLegacyTokenizer.

Optional ids (cls, sep, pad, eod, bos, eos, mask) raise NotImplementedError where the original
tokenizer has no such attribute, because callers such as the GPT dataset probe them with
try/except and fall back (pad = -1) exactly when the original did.

The properties live here once: a tokenizer stores its tables (`_vocab`, `_inv_vocab`), its
size when it is not the table's (`_vocab_size`) and the ids it has (`_set_special_ids`), instead
of repeating the same property blocks in every class.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any


def _special_id(name: str, doc: str) -> Any:
    """The read-only property of one optional id: its recorded value, else NotImplementedError."""
    return property(lambda self: self._special(name), doc=doc)


class Tokenizer(ABC):
    """Text <-> ids, the special ids, and an identity used to name dataset caches.

    `unique_identifiers` reproduces the original's dict (its class name, the paths it was
    built from, and its options as strings) so cache descriptions and their md5 names match
    the original's byte for byte.
    """

    #: The original's class name, reported in `unique_identifiers["class"]`.
    original_class_name: str = ""

    #: Token -> id and id -> token; None where the original offers no vocabulary.
    _vocab: Mapping[Any, int] | None = None
    _inv_vocab: Mapping[int, Any] | None = None

    #: The number of ids when it is not the size of `_vocab`.
    _vocab_size: int | None = None

    def __init__(self, *tokenizer_paths: str | None, **tokenizer_options: Any) -> None:
        ids: dict[str, Any] = {
            "class": self.original_class_name or type(self).__name__,
            "tokenizer_path": list(tokenizer_paths),
        }
        for name, value in tokenizer_options.items():
            ids[name] = str(value)
        self._unique_identifiers = ids
        self._special_ids: dict[str, int | None] = {}

    def _set_special_ids(self, **ids: int | None) -> None:
        """Record the optional ids (cls, sep, pad, eod, bos, eos, mask) this tokenizer has."""
        self._special_ids.update(ids)

    def _special(self, name: str) -> int | None:
        # None only for the HF-based tokenizers whose files name no such token, as the original.
        if name not in self._special_ids:
            raise self._missing(name)
        return self._special_ids[name]

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
    def vocab(self) -> Mapping[Any, int]:
        """Token -> id."""
        if self._vocab is None:
            raise NotImplementedError(f"{type(self).__name__} has no vocab")
        return self._vocab

    @property
    def inv_vocab(self) -> Mapping[int, Any]:
        """Id -> token."""
        if self._inv_vocab is None:
            raise NotImplementedError(f"{type(self).__name__} has no inv_vocab")
        return self._inv_vocab

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included, before padding."""
        return len(self.vocab) if self._vocab_size is None else self._vocab_size

    def _missing(self, name: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} has no attribute '{name}'")

    def _with_bos_eos(self, ids: list[int], bos: bool, eos: bool) -> list[int]:
        """`ids`, after bos and before eos where asked (Llama2Tokenizer, TikTokenizer)."""
        if bos:
            ids = [self._special_ids["bos"], *ids]
        if eos:
            ids = [*ids, self._special_ids["eos"]]
        return ids

    cls = _special_id("cls", "The CLS token id.")
    sep = _special_id("sep", "The SEP token id.")
    pad = _special_id("pad", "The PAD token id.")
    eod = _special_id("eod", "The end-of-document id appended by preprocessing (`--append-eod`).")
    bos = _special_id("bos", "The beginning-of-sequence id.")
    eos = _special_id("eos", "The end-of-sequence id.")
    mask = _special_id("mask", "The MASK token id.")


class EncoderDecoderNames:
    """The original's `encoder` / `decoder` aliases of vocab / inv_vocab (SentencePiece, tiktoken)."""

    @property
    def encoder(self: Tokenizer) -> Mapping[Any, int]:  # type: ignore[misc]
        return self.vocab

    @property
    def decoder(self: Tokenizer) -> Mapping[int, Any]:  # type: ignore[misc]
        return self.inv_vocab
