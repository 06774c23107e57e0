"""`build_tokenizer`: pick and construct the `--tokenizer-type` from the tokenizer flags.

The flag classes of `config` are the runtime configuration, taken as parsed: no class copies
their fields by name, so a renamed flag fails loudly instead of falling back to a default. Each
tokenizer module is imported only when chosen, so a missing optional library (HF `tokenizers`,
jinja2) matters only to the types that need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gpt_flags import spec_of

from .base import Tokenizer
from .config import MultimodalOptions, SFTPromptConfig, TokenizerFlags, VocabPaddingConfig
from .errors import TokenizerError, require
from .vocab_padding import padded_vocab_message, padded_vocab_size

Log = Callable[[str], None]


def _flag_choices(config_cls: type, name: str) -> tuple[str, ...]:
    (field,) = [f for f in dataclasses.fields(config_cls) if f.name == name]
    return tuple(spec_of(field).choices or ())


TOKENIZER_TYPES: tuple[str, ...] = _flag_choices(TokenizerFlags, "tokenizer_type")
"""The `--tokenizer-type` choices, read from the flag's declaration (one list, no copy)."""


def building_message(tokenizer_type: str) -> str:
    """The original's rank-0 line before building: '> building X tokenizer ...'."""
    return f"> building {tokenizer_type} tokenizer ..."


def _model_path(cfg: TokenizerFlags, kind: str) -> str:
    # The loaders check the file itself and name the flag when it is missing or unreadable.
    require(cfg.tokenizer_model, "--tokenizer-model", kind)
    return str(cfg.tokenizer_model)


def _bert(cfg: TokenizerFlags, lower_case: bool) -> Tokenizer:
    from .bert import BertWordPieceTokenizer

    require(cfg.vocab_file, "--vocab-file", cfg.tokenizer_type or "")
    return BertWordPieceTokenizer(
        cfg.vocab_file,
        lower_case=lower_case,
        vocab_extra_ids=cfg.vocab_extra_ids,
    )


def _gpt2(cfg: TokenizerFlags) -> Tokenizer:
    from .gpt2_bpe import GPT2BPETokenizer

    require(cfg.vocab_file, "--vocab-file", "GPT2BPETokenizer")
    require(cfg.merge_file, "--merge-file", "GPT2BPETokenizer")
    return GPT2BPETokenizer(cfg.vocab_file, cfg.merge_file)


def _tiktoken(cfg: TokenizerFlags, log: Log | None) -> Tokenizer:
    from .tiktokenizer import TIKTOKEN_PATTERNS, TikTokenizer

    path = _model_path(cfg, "TikTokenizer")
    require(cfg.tiktoken_pattern, "--tiktoken-pattern", "TikTokenizer")
    if cfg.tiktoken_pattern not in TIKTOKEN_PATTERNS:
        raise TokenizerError(f"--tiktoken-pattern must be v1 or v2, got {cfg.tiktoken_pattern!r}")
    return TikTokenizer(
        path,
        pattern=TIKTOKEN_PATTERNS[cfg.tiktoken_pattern],
        vocab_size=cfg.vocab_size,
        num_special_tokens=cfg.tiktoken_num_special_tokens,
        special_tokens=cfg.tiktoken_special_tokens,
        log=log,
    )


def _multimodal(cfg: TokenizerFlags, options: MultimodalOptions | None) -> Tokenizer:
    from .multimodal import MultimodalTokenizer

    if options is None:
        raise TokenizerError(
            "--tokenizer-type MultimodalTokenizer needs a prompt format, extra special tokens "
            "and an image tag type (the original's multimodal flags --tokenizer-prompt-format, "
            "--special-tokens, --image-tag-type, which pretrain_gpt does not define) and a "
            "HuggingFace tokenizer in --tokenizer-model"
        )
    return MultimodalTokenizer(
        _model_path(cfg, "MultimodalTokenizer"),
        options.tokenizer_prompt_format,
        options.special_tokens,
        options.image_tag_type,
    )


def _sft(cfg: TokenizerFlags, prompt: SFTPromptConfig | None) -> Tokenizer:
    from .sft import SFTTokenizer

    if prompt is None:
        # Not the user's doing: the program did not hand over its "sft" flag group.
        raise TokenizerError(
            "--tokenizer-type SFTTokenizer: build_tokenizer needs the sft flags "
            "(--sft-tokenizer-prompt-format) as sft_prompt=SFTPromptConfig(...)"
        )
    return SFTTokenizer(_model_path(cfg, "SFTTokenizer"), prompt.sft_tokenizer_prompt_format)


def build_tokenizer(
    cfg: TokenizerFlags,
    log: Log | None = None,
    *,
    sft_prompt: SFTPromptConfig | None = None,
    multimodal: MultimodalOptions | None = None,
) -> Tokenizer:
    """Construct the tokenizer `cfg.tokenizer_type` names, loading only local files.

    `log` receives the original's informational lines (the '> building ...' line and the
    TikTokenizer vocab notes); the caller decides which rank prints them. `sft_prompt` (the
    "sft" flag group) is read only by SFTTokenizer and `multimodal` only by
    MultimodalTokenizer; either one missing when its type is chosen is an error, not a default.
    """
    kind = cfg.tokenizer_type
    if kind is None:
        raise TokenizerError("--tokenizer-type is required")
    if kind not in TOKENIZER_TYPES:
        raise TokenizerError(
            f"--tokenizer-type: unknown type {kind!r} (choices: {', '.join(TOKENIZER_TYPES)})"
        )
    if log:
        log(building_message(kind))

    if kind == "BertWordPieceLowerCase":
        return _bert(cfg, lower_case=True)
    if kind == "BertWordPieceCase":
        return _bert(cfg, lower_case=False)
    if kind == "GPT2BPETokenizer":
        return _gpt2(cfg)
    if kind in ("SentencePieceTokenizer", "GPTSentencePieceTokenizer", "Llama2Tokenizer"):
        from . import sentencepiece_tokenizers as sp

        path = _model_path(cfg, kind)
        if kind == "SentencePieceTokenizer":
            return sp.SentencePieceTokenizer(path, vocab_extra_ids=cfg.vocab_extra_ids)
        if kind == "GPTSentencePieceTokenizer":
            return sp.GPTSentencePieceTokenizer(path)
        return sp.Llama2Tokenizer(path)
    if kind == "HuggingFaceTokenizer":
        from .huggingface import HuggingFaceTokenizer

        return HuggingFaceTokenizer(_model_path(cfg, kind))
    if kind == "TikTokenizer":
        return _tiktoken(cfg, log)
    if kind in ("NullTokenizer", "NullMultimodalTokenizer"):
        from .null import NullMultimodalTokenizer, NullTokenizer

        require(cfg.vocab_size, "--vocab-size", kind)
        cls = NullTokenizer if kind == "NullTokenizer" else NullMultimodalTokenizer
        return cls(cfg.vocab_size)
    if kind == "SFTTokenizer":
        return _sft(cfg, sft_prompt)
    return _multimodal(cfg, multimodal)


def resolve_padded_vocab_size(
    cfg: TokenizerFlags,
    padding: VocabPaddingConfig,
    tokenizer: Tokenizer,
    *,
    tensor_model_parallel_size: int,
    log: Log | None = None,
) -> int:
    """`--padded-vocab-size` when given, else the tokenizer's size padded (logging the original's line).

    The padding multiple is `--make-vocab-size-divisible-by` times `--tensor-model-parallel-size`;
    the latter is gpt-parallel's flag, so the caller passes its value (required: a forgotten
    TP size would silently pad for one rank).
    """
    if cfg.padded_vocab_size is not None:
        return cfg.padded_vocab_size
    padded = padded_vocab_size(
        tokenizer.vocab_size, padding.make_vocab_size_divisible_by, tensor_model_parallel_size
    )
    if log:
        log(padded_vocab_message(tokenizer.vocab_size, padded))
    return padded
