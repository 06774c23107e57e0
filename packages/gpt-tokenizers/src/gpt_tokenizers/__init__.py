"""Tokenizers of the original (GPT-2 BPE, SentencePiece, tiktoken, HF, null, ...) without torch.

Build one with `build_tokenizer(TokenizerConfig(tokenizer_type=..., ...))`; see README.md.
"""

from .base import Tokenizer
from .build import build_tokenizer, building_message, resolve_padded_vocab_size
from .errors import TokenizerError
from .tokenizer_config import TOKENIZER_TYPES, TokenizerConfig
from .vocab_padding import padded_vocab_message, padded_vocab_size

__version__ = "0.1.0"

__all__ = [
    "TOKENIZER_TYPES",
    "Tokenizer",
    "TokenizerConfig",
    "TokenizerError",
    "build_tokenizer",
    "building_message",
    "padded_vocab_message",
    "padded_vocab_size",
    "resolve_padded_vocab_size",
]
