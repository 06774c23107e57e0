"""SFTTokenizer: a HuggingFace tokenizer plus one of the original's SFT prompt formats.

Formats: 'nemotron-h-aligned' (the flag's default; pad <SPECIAL_233>, an EOD is forced after
every sample), 'nemotron-nano-v2' (pad <unk>, the 3-token assistant header is masked),
'identity' (contents concatenated, pad <unk>) and 'default' (the tokenizer's own chat
template; targets are not masked; pad = pad or eos).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Tokenizer
from .chat import PromptConfig, tokenize_conversation
from .errors import TokenizerError
from .hf_files import decode, load_hf_tokenizer
from .prompt_formats import (
    JinjaRenderer,
    render_identity,
    render_nemotron_h_aligned,
    render_nemotron_nano_v2,
)

SFT_PROMPT_FORMATS = ("nemotron-h-aligned", "nemotron-nano-v2", "identity", "default")


class SFTTokenizer(Tokenizer):
    """Text and conversations to ids for supervised fine-tuning."""

    original_class_name = "SFTTokenizer"

    def __init__(self, tokenizer_path: str, prompt_format: str) -> None:
        super().__init__(tokenizer_path, prompt_format=prompt_format)
        what = "--tokenizer-type SFTTokenizer"
        files = load_hf_tokenizer(tokenizer_path, what)
        self._files = files
        self._tokenizer = files.tokenizer
        self._vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self._prompt_format = prompt_format
        if prompt_format == "nemotron-nano-v2":
            self._prompt = PromptConfig(
                3, files.token_id("<unk>"), render_nemotron_nano_v2, False, True
            )
        elif prompt_format == "nemotron-h-aligned":
            pad = files.token_id("<SPECIAL_233>")
            self._prompt = PromptConfig(0, pad, render_nemotron_h_aligned, False, True)
        elif prompt_format == "identity":
            self._prompt = PromptConfig(0, files.token_id("<unk>"), render_identity, False, True)
        elif prompt_format == "default":
            pad = files.special_id("pad_token")
            self._prompt = PromptConfig(
                0,
                files.special_id("eos_token") if pad is None else pad,
                JinjaRenderer(files.chat_template, files.special_tokens, what),
                files.special_id("bos_token") is not None,
                True,
                mask_targets=False,
            )
        else:
            raise TokenizerError(
                f"--sft-tokenizer-prompt-format: unknown format {prompt_format!r} "
                f"(choices: {', '.join(SFT_PROMPT_FORMATS)})"
            )

    def _encode_rendered(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def tokenize_conversation(
        self,
        conversation: Sequence[Mapping[str, Any]],
        return_target: bool,
        add_generation_prompt: bool,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Ids of a [{'role', 'content'}, ...] conversation; with targets, prompts are IGNORE_INDEX."""
        return tokenize_conversation(
            self._encode_rendered, self._prompt, conversation, return_target, add_generation_prompt
        )

    def tokenize(self, text: str | Sequence[Mapping[str, Any]]) -> list[int]:
        """Plain text is encoded with the tokenizer's special tokens; a conversation gets the
        prompt format and a generation prompt (the inference path)."""
        if isinstance(text, list):
            return self.tokenize_conversation(text, False, True).tolist()
        return self._tokenizer.encode(text, add_special_tokens=True).ids

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

    @property
    def force_eod(self) -> bool:
        """Whether the SFT dataset must end every sample with EOD."""
        return self._prompt_format == "nemotron-h-aligned"

    @property
    def pad(self) -> int | None:
        return self._prompt.pad_token_id

    @property
    def bos(self) -> int | None:
        return self._files.special_id("bos_token")

    @property
    def eod(self) -> int | None:
        return self._files.special_id("eos_token")

    @property
    def eos(self) -> int | None:
        return self._files.special_id("eos_token")

    @property
    def vocab(self):  # noqa: D102 - not offered by the original either
        raise NotImplementedError("SFTTokenizer has no vocab")

    @property
    def inv_vocab(self):  # noqa: D102
        raise NotImplementedError("SFTTokenizer has no inv_vocab")

    @property
    def vocab_size(self) -> int:
        return self._vocab_size
