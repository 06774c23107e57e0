"""The settings a tokenizer is built from, named exactly like the original's argparse dests.

The app maps its parsed flags onto these fields one to one; library code never reads a
namespace. Fields without a flag in pretrain_gpt (the multimodal ones) are documented as such.
"""

from __future__ import annotations

from dataclasses import dataclass

TOKENIZER_TYPES: tuple[str, ...] = (
    "BertWordPieceLowerCase",
    "BertWordPieceCase",
    "GPT2BPETokenizer",
    "SentencePieceTokenizer",
    "GPTSentencePieceTokenizer",
    "HuggingFaceTokenizer",
    "Llama2Tokenizer",
    "TikTokenizer",
    "MultimodalTokenizer",
    "NullTokenizer",
    "NullMultimodalTokenizer",
    "SFTTokenizer",
)


def _as_tuple(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """Everything `build_tokenizer` and the vocab padding read."""

    tokenizer_type: str | None = None
    """--tokenizer-type: one of TOKENIZER_TYPES (pretrain_gpt's script default is GPT2BPETokenizer)."""

    vocab_file: str | None = None
    """--vocab-file: GPT-2 vocab.json or BERT vocab.txt."""

    merge_file: str | None = None
    """--merge-file: GPT-2 merges.txt."""

    vocab_size: int | None = None
    """--vocab-size: NullTokenizer's size before EOD; TikTokenizer's total size (default 2**17)."""

    vocab_extra_ids: int = 0
    """--vocab-extra-ids: <extra_id_i> sentinel tokens (BERT and SentencePieceTokenizer)."""

    tokenizer_model: str | None = None
    """--tokenizer-model: SentencePiece .model, tiktoken .json rank file, or HF tokenizer dir/tokenizer.json."""

    tiktoken_pattern: str | None = None
    """--tiktoken-pattern: v1 or v2 (TikTokenizer)."""

    tiktoken_num_special_tokens: int = 1000
    """--tiktoken-num-special-tokens: ids reserved below the BPE ranks (TikTokenizer)."""

    tiktoken_special_tokens: tuple[str, ...] | None = None
    """--tiktoken-special-tokens: must include <unk>, <s>, </s> (TikTokenizer)."""

    sft_tokenizer_prompt_format: str = "nemotron-h-aligned"
    """--sft-tokenizer-prompt-format (dest sft_tokenizer_prompt_format): SFTTokenizer's prompt format."""

    make_vocab_size_divisible_by: int = 128
    """--make-vocab-size-divisible-by: padding multiple (times the TP size)."""

    tensor_model_parallel_size: int = 1
    """--tensor-model-parallel-size: the padding multiple is also divisible by it."""

    padded_vocab_size: int | None = None
    """--padded-vocab-size: when given, used as is instead of padding the tokenizer's vocab_size."""

    tokenizer_prompt_format: str | None = None
    """MultimodalTokenizer's prompt format (the original's multimodal --tokenizer-prompt-format; no flag in pretrain_gpt)."""

    special_tokens: tuple[str, ...] = ("<image>",)
    """MultimodalTokenizer's extra special tokens (the original's multimodal --special-tokens; no flag in pretrain_gpt)."""

    image_tag_type: str | None = None
    """MultimodalTokenizer's image tag: 'nvlm', 'internvl' or '' (multimodal --image-tag-type; no flag in pretrain_gpt)."""

    def __post_init__(self) -> None:
        # Flags arrive as lists from argparse; keep the frozen config hashable.
        object.__setattr__(self, "tiktoken_special_tokens", _as_tuple(self.tiktoken_special_tokens))
        object.__setattr__(self, "special_tokens", _as_tuple(self.special_tokens) or ())
