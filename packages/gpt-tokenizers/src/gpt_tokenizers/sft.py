"""SFTTokenizer: a HuggingFace tokenizer plus one of the original's SFT prompt formats.

Formats: 'nemotron-h-aligned' (the flag's default; pad <SPECIAL_233>, an EOD is forced after
every sample), 'nemotron-nano-v2' (pad <unk>, the 3-token assistant header is masked),
'identity' (contents concatenated, pad <unk>) and 'default' (the tokenizer's own chat
template; targets are not masked; pad = pad or eos).
"""

from __future__ import annotations

from .chat import PromptConfig
from .errors import TokenizerError
from .hf_chat import HFChatTokenizer
from .prompt_formats import (
    JinjaRenderer,
    render_identity,
    render_nemotron_h_aligned,
    render_nemotron_nano_v2,
)

SFT_PROMPT_FORMATS = ("nemotron-h-aligned", "nemotron-nano-v2", "identity", "default")


class SFTTokenizer(HFChatTokenizer):
    """Text and conversations to ids for supervised fine-tuning."""

    original_class_name = "SFTTokenizer"

    def __init__(self, tokenizer_path: str, prompt_format: str) -> None:
        what = "--tokenizer-type SFTTokenizer"
        super().__init__(tokenizer_path, prompt_format, what)
        files = self._files
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
        eos = files.special_id("eos_token")
        self._set_special_ids(
            pad=self._prompt.pad_token_id, bos=files.special_id("bos_token"), eod=eos, eos=eos
        )

    @property
    def force_eod(self) -> bool:
        """Whether the SFT dataset must end every sample with EOD."""
        return self._prompt_format == "nemotron-h-aligned"
