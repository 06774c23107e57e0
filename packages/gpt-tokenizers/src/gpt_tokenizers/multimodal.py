"""MultimodalTokenizer: a HuggingFace tokenizer with image placeholders and a chat prompt format.

It needs settings that only the original's multimodal programs define (a prompt format, the
extra special tokens, the image tag), so pretrain_gpt cannot select it without them. As in the
original, vocab_size is the size before the extra special tokens are added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Tokenizer
from .chat import PromptConfig, tokenize_conversation
from .errors import TokenizerError
from .hf_files import decode, load_hf_tokenizer
from .null import IMAGE_TOKEN
from .prompt_formats import ImRenderer, JinjaRenderer, Llama3p1Renderer, MistralRenderer

IMAGE_TAGS: dict[str, tuple[str, str] | None] = {
    "nvlm": ("<Image>", "</Image>"),
    "internvl": ("<img>", "</img>"),
    "": None,
}
MULTIMODAL_PROMPT_FORMATS = (
    "mistral",
    "llama3",
    "llama3p1",
    "llama3p2",
    "nvlm-yi-34b",
    "chatml",
    "qwen2p0",
    "qwen2p5",
)


class MultimodalTokenizer(Tokenizer):
    """Text with <image> placeholders and chat conversations to ids."""

    original_class_name = "MultimodalTokenizer"

    def __init__(
        self,
        tokenizer_path: str,
        prompt_format: str,
        special_tokens: Sequence[str],
        image_tag_type: str | None,
    ) -> None:
        super().__init__(tokenizer_path, prompt_format=prompt_format)
        what = "--tokenizer-type MultimodalTokenizer"
        files = load_hf_tokenizer(tokenizer_path, what)
        self._files = files
        self._tokenizer = files.tokenizer
        self._vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        present = [t for t in special_tokens if self._tokenizer.token_to_id(t) is not None]
        if present:
            raise TokenizerError(
                f"{what}: special tokens already in the vocabulary: {' '.join(present)}"
            )
        self._tokenizer.add_special_tokens(list(special_tokens))

        specials = files.special_tokens
        bos, eos = specials.get("bos_token") or "", specials.get("eos_token") or ""
        if prompt_format == "mistral":
            self._prompt = PromptConfig(
                0, files.special_id("unk_token"), MistralRenderer(bos, eos), True, False
            )
        elif prompt_format == "llama3":
            render = JinjaRenderer(files.chat_template, specials, what)
            self._prompt = PromptConfig(4, files.token_id("<|end_of_text|>"), render, True, True)
        elif prompt_format in ("llama3p1", "llama3p2"):
            pad = files.token_id("<|finetune_right_pad_id|>")
            self._prompt = PromptConfig(4, pad, Llama3p1Renderer(bos), True, True)
        elif prompt_format == "nvlm-yi-34b":
            pad = files.special_id("pad_token")
            self._prompt = PromptConfig(4, pad, ImRenderer(bos), True, True)
        elif prompt_format == "chatml":
            render = JinjaRenderer(files.chat_template, specials, what)
            self._prompt = PromptConfig(3, files.special_id("pad_token"), render, False, True)
        elif prompt_format in ("qwen2p0", "qwen2p5"):
            pad = files.special_id("pad_token")
            self._prompt = PromptConfig(3, pad, ImRenderer(), False, True)
        else:
            raise TokenizerError(
                f"{what}: unknown prompt format {prompt_format!r} "
                f"(choices: {', '.join(MULTIMODAL_PROMPT_FORMATS)})"
            )
        tag_type = image_tag_type or ""
        if tag_type not in IMAGE_TAGS:
            raise TokenizerError(
                f"{what}: unknown image tag type {tag_type!r} (choices: nvlm, internvl, '')"
            )
        self._image_tag = IMAGE_TAGS[tag_type]

    def _apply_image_tag(self, text: str) -> str:
        if self._image_tag is None:
            return text
        return text.replace(IMAGE_TOKEN, f"{self._image_tag[0]}{IMAGE_TOKEN}{self._image_tag[1]}")

    def tokenize_conversation(
        self,
        conversation: Sequence[Mapping[str, Any]],
        return_target: bool,
        add_generation_prompt: bool,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Ids of a conversation (image tags applied); with targets, prompts are IGNORE_INDEX."""
        turns = []
        for turn in conversation:
            content = turn.get("content") or ""
            if return_target and not content:
                raise TokenizerError(f"empty turn in conversation: {conversation}")
            if return_target and turn.get("role") == "assistant" and IMAGE_TOKEN in content:
                raise TokenizerError(f"{IMAGE_TOKEN} not allowed in assistant content")
            turns.append({**turn, "content": self._apply_image_tag(content)})
        return tokenize_conversation(
            lambda text: self._tokenizer.encode(text, add_special_tokens=False).ids,
            self._prompt,
            turns,
            return_target,
            add_generation_prompt,
        )

    def tokenize(self, text: str | Sequence[Mapping[str, Any]]) -> list[int]:
        if isinstance(text, list):
            return self.tokenize_conversation(text, False, True).tolist()
        return self._tokenizer.encode(self._apply_image_tag(text), add_special_tokens=True).ids

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
    def pad(self) -> int | None:
        return self._prompt.pad_token_id

    @property
    def eod(self) -> int | None:
        return self._files.special_id("eos_token")

    @property
    def vocab(self):  # noqa: D102 - not offered by the original either
        raise NotImplementedError("MultimodalTokenizer has no vocab")

    @property
    def inv_vocab(self):  # noqa: D102
        raise NotImplementedError("MultimodalTokenizer has no inv_vocab")

    @property
    def vocab_size(self) -> int:
        return self._vocab_size
