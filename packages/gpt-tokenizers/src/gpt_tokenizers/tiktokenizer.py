"""TikTokenizer: a tiktoken BPE read from the original's JSON rank file, below reserved special ids.

The rank file is a JSON list whose i-th entry is {"rank": i, "token_bytes": base64 bytes,
"token_str": readable form}, with the 256 single bytes first. The first
`--tiktoken-num-special-tokens` ids (default 1000) are special: the given special tokens
(default <unk> <s> </s>) then <SPECIAL_k> fillers; BPE rank r becomes id r + that number.
The vocab holds `--vocab-size` ids (default 2**17), so the rank file is cut to fit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from pathlib import Path

import tiktoken

from .base import EncoderDecoderNames, Tokenizer
from .errors import TokenizerError, read_json

PATTERN_TIKTOKEN_V1 = (
    r"[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"
)
"""--tiktoken-pattern v1: letter runs (with at most one leading non-letter), single digits, punctuation runs, whitespace."""

PATTERN_TIKTOKEN_V2 = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""--tiktoken-pattern v2: v1 split further at case changes (camelCase words become two pieces)."""

TIKTOKEN_PATTERNS = {"v1": PATTERN_TIKTOKEN_V1, "v2": PATTERN_TIKTOKEN_V2}
REQUIRED_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
DEFAULT_VOCAB_SIZE = 2**17


def load_tiktoken_ranks(
    path: str, max_vocab: int | None = None, log: Callable[[str], None] | None = None
) -> dict[bytes, int]:
    """Read the JSON rank file into tiktoken's {token bytes: rank}, keeping the first `max_vocab`."""
    flag = "--tokenizer-model"
    if not path.endswith(".json"):
        raise TokenizerError(f"{flag}: TikTokenizer needs a .json rank file, got {path}")
    entries = read_json(flag, path)
    if not isinstance(entries, list):
        raise TokenizerError(f"{flag}: {path} is not a JSON list of rank entries")
    if log:
        log(f"Vocab size: {len(entries)}")
    if max_vocab is not None:
        entries = entries[:max_vocab]
        if log:
            log(f"Cutting vocab to first {len(entries)} tokens.")
    ranks: dict[bytes, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"rank", "token_bytes", "token_str"}:
            raise TokenizerError(
                f"{flag}: entry {i} of {path} must have exactly rank, token_bytes, token_str"
            )
        if entry["rank"] != i:
            raise TokenizerError(f"{flag}: entry {i} of {path} has rank {entry['rank']}")
        try:
            token = base64.b64decode(entry["token_bytes"], validate=True)
        except (binascii.Error, TypeError, ValueError) as e:
            raise TokenizerError(f"{flag}: entry {i} of {path}: token_bytes is not base64") from e
        if i < 256 and token != bytes([i]):
            raise TokenizerError(f"{flag}: entry {i} of {path} must be the single byte 0x{i:02x}")
        if token in ranks:
            raise TokenizerError(
                f"{flag}: entry {i} of {path} repeats the bytes of entry {ranks[token]}"
            )
        ranks[token] = i
    return ranks


class TikTokenizer(EncoderDecoderNames, Tokenizer):
    """tiktoken BPE with reserved special ids; eod = eos = </s>, bos = <s>, unk = <unk>."""

    original_class_name = "CustomTikTokenizer"

    def __init__(
        self,
        path: str,
        pattern: str,
        vocab_size: int | None,
        num_special_tokens: int,
        special_tokens: Sequence[str] | None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            path,
            pattern=pattern,
            vocab_size=vocab_size,
            num_special_tokens=num_special_tokens,
            special_tokens=None if special_tokens is None else list(special_tokens),
        )
        self._vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else int(vocab_size)
        specials = list(REQUIRED_SPECIAL_TOKENS if special_tokens is None else special_tokens)
        if len(set(specials)) != len(specials):
            raise TokenizerError(f"--tiktoken-special-tokens must be unique: {specials}")
        if not set(REQUIRED_SPECIAL_TOKENS) <= set(specials):
            raise TokenizerError(
                f"--tiktoken-special-tokens must include {' '.join(REQUIRED_SPECIAL_TOKENS)}"
            )
        if not len(specials) <= num_special_tokens < self._vocab_size:
            raise TokenizerError(
                f"--tiktoken-num-special-tokens {num_special_tokens} must be at least the "
                f"{len(specials)} special tokens and below the vocab size {self._vocab_size}"
            )
        fillers = [f"<SPECIAL_{i}>" for i in range(len(specials), num_special_tokens)]
        if fillers and log:
            log(f"Adding special tokens {fillers[0]}, ..., {fillers[-1]}")
        specials += fillers
        if len(set(specials)) != num_special_tokens:
            raise TokenizerError(
                f"--tiktoken-special-tokens clash with the <SPECIAL_k> fillers: {specials[:8]}"
            )

        inner_size = self._vocab_size - num_special_tokens
        ranks = load_tiktoken_ranks(path, max_vocab=inner_size, log=log)
        if len(ranks) != inner_size:
            raise TokenizerError(
                f"--tokenizer-model: {path} has {len(ranks)} ranks but vocab size "
                f"{self._vocab_size} - {num_special_tokens} special tokens needs {inner_size} "
                "(set --vocab-size to fit the file)"
            )
        ranks = {t: r + num_special_tokens for t, r in ranks.items()}
        special_ids = {t: i for i, t in enumerate(specials)}
        self._unk = special_ids["<unk>"]
        eos = special_ids["</s>"]
        self._set_special_ids(bos=special_ids["<s>"], eos=eos, eod=eos)
        self._model = tiktoken.Encoding(
            name=Path(path).parent.name,
            pat_str=pattern,
            mergeable_ranks=ranks,
            special_tokens=special_ids,
        )
        self._vocab: dict[bytes | str, int] = {**ranks, **special_ids}
        self._inv_vocab = {i: t for t, i in self._vocab.items()}

    def tokenize(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        return self._with_bos_eos(self._model.encode_ordinary(text), bos, eos)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._model.decode([int(i) for i in ids])

    def offsets(self, ids: Sequence[int], text: str) -> list[int]:
        ids = [int(i) for i in ids]
        try:
            return self._model.decode_with_offsets(ids)[1]
        except UnicodeDecodeError:
            # tiktoken insists the bytes decode strictly; count characters by UTF-8 lead bytes.
            offsets, length = [], 0
            for token in self._model.decode_tokens_bytes(ids):
                continuation = bool(token) and 0x80 <= token[0] < 0xC0
                offsets.append(max(0, length - continuation))
                length += sum(1 for c in token if not 0x80 <= c < 0xC0)
            return offsets

    @property
    def unk(self) -> int:
        return self._unk
