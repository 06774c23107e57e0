"""Tokenizing prompts and turning generated ids back into text and per-token segments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpt_tokenizers import TokenizerError

from gpt_inference.request import GenerationError


def tokenize_prompt(tokenizer: Any, prompt: str, add_bos: bool = False) -> list[int]:
    """The prompt's ids; with `add_bos` the tokenizer's BOS id first, or its end-of-document id
    where it has no BOS (as the original's server does: it always prepends eod)."""
    try:
        ids = list(tokenizer.tokenize(prompt)) if prompt else []
    except (TokenizerError, ValueError) as err:
        raise GenerationError(f"prompt {prompt!r}: {err}", "prompts") from None
    if add_bos:
        ids = [bos_id(tokenizer), *ids]
    return ids


def bos_id(tokenizer: Any) -> int:
    try:
        bos = tokenizer.bos
    except (NotImplementedError, AttributeError):
        bos = None
    return int(tokenizer.eod if bos is None else bos)


def detokenize(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.detokenize([int(i) for i in ids])


def segments(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The text of each token within the detokenized sequence (the original's `offsets`);
    tokenizers without `offsets` split by the growing detokenized prefix."""
    ids = [int(i) for i in ids]
    text = detokenize(tokenizer, ids)
    try:
        starts = list(tokenizer.offsets(ids, text))
    except NotImplementedError:
        starts = prefix_offsets(tokenizer, ids)
    ends = [*starts[1:], len(text)]
    return [text[a:b] for a, b in zip(starts, ends)]


def prefix_offsets(tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """Start of each token: the length of the text of the tokens before it."""
    return [len(detokenize(tokenizer, ids[:i])) for i in range(len(ids))]


def token_text(tokenizer: Any, token: int) -> str:
    return detokenize(tokenizer, [token])
