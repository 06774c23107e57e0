"""MultimodalTokenizer: a HuggingFace tokenizer with image placeholders and a chat prompt format.

It needs settings that only the original's multimodal programs define (a prompt format, the
extra special tokens, the image tag), so pretrain_gpt cannot select it without them. As in the
original, vocab_size is the size before the extra special tokens are added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .chat import PromptConfig
from .errors import TokenizerError
from .hf_chat import HFChatTokenizer
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


class MultimodalTokenizer(HFChatTokenizer):
    """Text with <image> placeholders and chat conversations to ids."""

    original_class_name = "MultimodalTokenizer"

    def __init__(
        self,
        tokenizer_path: str,
        prompt_format: str,
        special_tokens: Sequence[str],
        image_tag_type: str | None,
    ) -> None:
        what = "--tokenizer-type MultimodalTokenizer"
        super().__init__(tokenizer_path, prompt_format, what)  # vocab_size: before the additions
        files = self._files
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
        self._set_special_ids(pad=self._prompt.pad_token_id, eod=files.special_id("eos_token"))

    def _prepare_text(self, text: str) -> str:
        """The text with each <image> wrapped in the image tag (when there is one)."""
        if self._image_tag is None:
            return text
        return text.replace(IMAGE_TOKEN, f"{self._image_tag[0]}{IMAGE_TOKEN}{self._image_tag[1]}")

    def _prepare_turns(
        self, conversation: Sequence[Mapping[str, Any]], return_target: bool
    ) -> list[Mapping[str, Any]]:
        """Training conversations must have content and no image in the answers; images are tagged."""
        turns = []
        for turn in conversation:
            content = turn.get("content") or ""
            if return_target and not content:
                raise TokenizerError(f"empty turn in conversation: {conversation}")
            if return_target and turn.get("role") == "assistant" and IMAGE_TOKEN in content:
                raise TokenizerError(f"{IMAGE_TOKEN} not allowed in assistant content")
            turns.append({**turn, "content": self._prepare_text(content)})
        return turns
