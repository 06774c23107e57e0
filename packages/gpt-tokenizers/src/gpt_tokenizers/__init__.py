"""Tokenizers of the original (GPT-2 BPE, SentencePiece, tiktoken, HF, null, ...) without torch."""

__version__ = "0.1.0"
