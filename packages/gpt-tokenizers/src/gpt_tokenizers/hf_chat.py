"""What SFTTokenizer and MultimodalTokenizer share: a local HF tokenizer plus a chat prompt format.

Both load the same files, offer the same token lookups and decoding, and tokenize plain text
with the tokenizer's special tokens and a conversation with their prompt format; like the
original's, neither has a vocab / inv_vocab, and vocab_size is the size as loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Tokenizer
from .chat import PromptConfig, tokenize_conversation
from .hf_files import decode, load_hf_tokenizer


class HFChatTokenizer(Tokenizer):
    """A HuggingFace tokenizer whose conversations a prompt format (`_prompt`, set by the
    subclass) renders."""

    _prompt: PromptConfig

    def __init__(self, tokenizer_path: str, prompt_format: str, what: str) -> None:
        super().__init__(tokenizer_path, prompt_format=prompt_format)
        self._files = load_hf_tokenizer(tokenizer_path, what)
        self._tokenizer = self._files.tokenizer
        self._vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)

    def _prepare_text(self, text: str) -> str:
        """Plain text as the tokenizer should see it (MultimodalTokenizer tags images)."""
        return text

    def _prepare_turns(
        self, conversation: Sequence[Mapping[str, Any]], return_target: bool
    ) -> Sequence[Mapping[str, Any]]:
        """The turns as the prompt format should see them (MultimodalTokenizer checks and tags)."""
        return conversation

    def _encode_rendered(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def tokenize_conversation(
        self,
        conversation: Sequence[Mapping[str, Any]],
        return_target: bool,
        add_generation_prompt: bool,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Ids of a [{'role', 'content'}, ...] conversation; with targets, prompts are IGNORE_INDEX."""
        turns = self._prepare_turns(conversation, return_target)
        return tokenize_conversation(
            self._encode_rendered, self._prompt, turns, return_target, add_generation_prompt
        )

    def tokenize(self, text: str | Sequence[Mapping[str, Any]]) -> list[int]:
        """Plain text is encoded with the tokenizer's special tokens; a conversation gets the
        prompt format and a generation prompt (the inference path)."""
        if isinstance(text, list):
            return self.tokenize_conversation(text, False, True).tolist()
        return self._tokenizer.encode(self._prepare_text(text), add_special_tokens=True).ids

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | None | list[int | None]:
        """Token strings to ids (unknown strings map to unk)."""
        if isinstance(tokens, str):
            return self._files.token_id(tokens)
        return [self._files.token_id(t) for t in tokens]

    def detokenize(self, ids: Sequence[int]) -> str:
        return decode(self._files, list(ids))

    def get_special_tokens(self) -> dict[str, int]:
        """The added tokens and their ids."""
        return {t.content: i for i, t in self._tokenizer.get_added_tokens_decoder().items()}
