"""Flags owned by gpt-tokenizers: the tokenizer and the vocabulary padding.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.

These flag classes are the runtime configuration: `build_tokenizer` and
`resolve_padded_vocab_size` take them as they are. `MultimodalOptions` is the one non-flag
config: settings pretrain_gpt has no flags for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class VocabPaddingConfig:
    """The original's "network size" flags owned here."""

    GROUP: ClassVar[str] = "network size"

    make_vocab_size_divisible_by: int = flag(
        128,
        "--make-vocab-size-divisible-by",
        type=int,
        help="Pad the vocab size to be divisible by this value.This is added for computational efficieny reasons.",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class TokenizerFlags:
    """The original's "tokenizer" flags owned here."""

    GROUP: ClassVar[str] = "tokenizer"

    vocab_size: int | None = flag(
        None,
        "--vocab-size",
        type=int,
        help="Size of vocab before EOD or padding.",
        status=EFFECTIVE,
    )
    padded_vocab_size: int | None = flag(
        None,
        "--padded-vocab-size",
        type=int,
        help="Vocabulary size of the model (padded to be divisible by tensor model parallel size). If not provided, it will be automatically calculated from vocab-size.",
        status=EFFECTIVE,
    )
    vocab_file: str | None = flag(
        None, "--vocab-file", help="Path to the vocab file.", status=EFFECTIVE
    )
    merge_file: str | None = flag(
        None, "--merge-file", help="Path to the BPE merge file.", status=EFFECTIVE
    )
    vocab_extra_ids: int = flag(
        0,
        "--vocab-extra-ids",
        type=int,
        help="Number of additional vocabulary tokens. They are used for span masking in the T5 model",
        status=EFFECTIVE,
    )
    tokenizer_type: str | None = flag(
        None,
        "--tokenizer-type",
        choices=(
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
        ),
        help="What type of tokenizer to use.",
        status=EFFECTIVE,
    )
    tokenizer_model: str | None = flag(
        None, "--tokenizer-model", help="Sentencepiece tokenizer model.", status=EFFECTIVE
    )
    tiktoken_pattern: str | None = flag(
        None,
        "--tiktoken-pattern",
        help="Which tiktoken pattern to use. Options: [v1, v2]",
        status=EFFECTIVE,
    )
    tiktoken_num_special_tokens: int = flag(
        1000,
        "--tiktoken-num-special-tokens",
        type=int,
        help="Number of special tokens in tiktoken tokenizer",
        status=EFFECTIVE,
    )
    tiktoken_special_tokens: list[str] | None = flag(
        None,
        "--tiktoken-special-tokens",
        nargs="+",
        help='List of tiktoken special tokens, needs to have ["<unk>", "<s>", "</s>"]',
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class SFTPromptConfig:
    """The original's "sft" flags owned here."""

    GROUP: ClassVar[str] = "sft"

    sft_tokenizer_prompt_format: str = flag(
        "nemotron-h-aligned",
        "--sft-tokenizer-prompt-format",
        help="SFT prompt format.",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class MultimodalOptions:
    """MultimodalTokenizer's settings. They are flags only of the original's multimodal programs
    (--tokenizer-prompt-format, --special-tokens, --image-tag-type), not of pretrain_gpt, so they
    are no flags here; a caller that has them passes them to `build_tokenizer(multimodal=...)`."""

    tokenizer_prompt_format: str
    """The chat prompt format (mistral, llama3, llama3p1, llama3p2, nvlm-yi-34b, chatml, qwen2p0, qwen2p5)."""

    special_tokens: tuple[str, ...] = ("<image>",)
    """Extra special tokens added to the HF tokenizer."""

    image_tag_type: str | None = None
    """The image tag around each <image>: 'nvlm', 'internvl' or '' (none)."""
