"""Tokenizers of the original (GPT-2 BPE, SentencePiece, tiktoken, HF, null, ...) without torch.

Build one with `build_tokenizer(TokenizerFlags(tokenizer_type=..., ...))`: the flag classes of
`config` are the runtime configuration; see README.md.
"""

from .base import Tokenizer
from .build import TOKENIZER_TYPES, build_tokenizer, building_message, resolve_padded_vocab_size
from .config import MultimodalOptions, SFTPromptConfig, TokenizerFlags, VocabPaddingConfig
from .errors import TokenizerError
from .vocab_padding import padded_vocab_message, padded_vocab_size

__version__ = "0.1.0"

__all__ = [
    "TOKENIZER_TYPES",
    "MultimodalOptions",
    "SFTPromptConfig",
    "Tokenizer",
    "TokenizerError",
    "TokenizerFlags",
    "VocabPaddingConfig",
    "build_tokenizer",
    "building_message",
    "padded_vocab_message",
    "padded_vocab_size",
    "resolve_padded_vocab_size",
]
