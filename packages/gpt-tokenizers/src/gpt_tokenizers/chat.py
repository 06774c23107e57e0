"""Conversation -> token ids (and loss targets) for the SFT and multimodal tokenizers.

The whole conversation is rendered and tokenized once; then each turn is rendered and
tokenized alone to find its span, and system/user/tool spans (and the assistant header, if the
format has one) are replaced by IGNORE_INDEX in the targets, so only assistant text is learned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import TokenizerError
from .prompt_formats import Renderer

IGNORE_INDEX = -100
"""Target value the loss skips (the same ignore_index as torch's cross entropy)."""


@dataclass(frozen=True)
class PromptConfig:
    """How one prompt format is rendered and masked."""

    assistant_prefix_len: int
    """Tokens of the assistant header (e.g. '<|im_start|>assistant\\n'), masked in targets."""
    pad_token_id: int | None
    render: Renderer
    has_bos: bool
    """The rendering starts with bos, which only the first turn keeps."""
    has_system_role: bool
    """Without one, a leading system message is dropped."""
    mask_targets: bool = True
    """False: targets equal the tokens (SFT 'default' format)."""


def tokenize_conversation(
    encode: Callable[[str], list[int]],
    config: PromptConfig,
    conversation: Sequence[Mapping[str, Any]],
    return_target: bool,
    add_generation_prompt: bool,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Token ids of a conversation, and with `return_target` the targets with prompts masked.

    `encode` tokenizes rendered text without adding special tokens (the template writes them).
    """
    if not conversation:
        raise TokenizerError("empty conversation")
    if not config.has_system_role and conversation[0].get("role") == "system":
        conversation = conversation[1:]
    tokens = np.asarray(encode(config.render(conversation, add_generation_prompt)), dtype=np.int64)
    if not return_target:
        return tokens
    target = tokens.copy()
    if not config.mask_targets:
        return tokens, target

    idx = 0
    for turn_idx, turn in enumerate(conversation):
        role = str(turn.get("role", "")).lower()
        if role == "assistant":
            if len(turn.get("content") or "") == 0:
                raise TokenizerError(f"empty assistant turn in conversation: {conversation}")
            if turn_idx == 0 or str(conversation[turn_idx - 1].get("role")).lower() not in (
                "user",
                "tool",
            ):
                raise TokenizerError(
                    f"assistant turn {turn_idx} must follow a user or tool turn: {conversation}"
                )
        turn_tokens = encode(config.render([turn], False))
        if config.has_bos and turn_idx > 0:
            turn_tokens = turn_tokens[1:]  # only the conversation's first turn keeps bos
        n = len(turn_tokens)
        if role in ("system", "user", "tool"):
            target[idx : idx + n] = IGNORE_INDEX
        elif role == "assistant":
            target[idx : idx + config.assistant_prefix_len] = IGNORE_INDEX
        else:
            raise TokenizerError(
                f"unknown role {turn.get('role')!r} in conversation turn {turn_idx}"
            )
        if not np.array_equal(tokens[idx : idx + n], np.asarray(turn_tokens, dtype=np.int64)):
            raise TokenizerError(
                f"turn {turn_idx} tokenizes differently alone than inside the conversation, "
                "so its targets cannot be masked"
            )
        idx += n
    if idx != len(tokens):
        raise TokenizerError(
            f"conversation has {len(tokens)} tokens but its turns cover {idx}; "
            "cannot mask targets (with add_generation_prompt the prompt adds tokens)"
        )
    return tokens, target
