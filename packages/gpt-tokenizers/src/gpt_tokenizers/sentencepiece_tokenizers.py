"""SentencePiece-based tokenizers: SentencePieceTokenizer, GPTSentencePieceTokenizer, Llama2Tokenizer.

- SentencePieceTokenizer (BERT/T5 style) appends <CLS> <SEP> <EOD> <MASK> when the model lacks
  them, registers the model's pad/bos/eos pieces (or adds <PAD>/<BOS>/<EOS> when the model has
  none) and `--vocab-extra-ids` <extra_id_i>; those special strings in text become their ids.
- GPTSentencePieceTokenizer is the plain model: eod = eos, vocab_size = model size.
- Llama2Tokenizer prepends bos to every text, as the original does for text completion.
"""

from __future__ import annotations

from collections.abc import Sequence

import sentencepiece

from .base import EncoderDecoderNames, Tokenizer
from .errors import TokenizerError, check_file


def load_sentencepiece(path: str, flag: str = "--tokenizer-model"):
    """Load a SentencePiece model file, turning loader failures into a one-line error."""
    check_file(flag, path)
    try:
        return sentencepiece.SentencePieceProcessor(model_file=path)
    except (OSError, RuntimeError) as e:
        raise TokenizerError(f"{flag}: not a SentencePiece model: {path} ({e})") from e


def _piece_or(model, piece_id: int, default: str) -> str:
    # Disabled special ids are -1 in SentencePiece; the original then adds its own token.
    if 0 <= piece_id < model.get_piece_size():
        return model.id_to_piece(piece_id)
    return default


def _piece_begins(model, ids: Sequence[int]) -> list[int]:
    # The original reads `begin` of each decoded piece: a byte offset into the decoded text.
    decode = getattr(model, "decode_ids_as_immutable_proto", None) or model.decode_ids_as_proto
    return [p.begin for p in decode([int(i) for i in ids]).pieces]


class SentencePieceTokenizer(EncoderDecoderNames, Tokenizer):
    """SentencePiece with the original's added special tokens and T5 sentinels."""

    original_class_name = "_SentencePieceTokenizer"

    def __init__(self, model_file: str, vocab_extra_ids: int = 0) -> None:
        super().__init__(model_file, vocab_extra_ids=vocab_extra_ids)
        self._model = load_sentencepiece(model_file)
        self._vocab = {}
        self._inv_vocab = {}
        for i in range(self._model.get_piece_size()):
            piece = self._model.id_to_piece(i)
            self._inv_vocab[i] = piece
            self._vocab[piece] = i
        self._setup_special_tokens(vocab_extra_ids)

    def _setup_special_tokens(self, vocab_extra_ids: int) -> None:
        self._special_tokens: dict[str, int] = {}
        self._inv_special_tokens: dict[int, str] = {}
        self._t5_tokens: list[str] = []

        def add(token: str) -> int:
            if token not in self._vocab:
                new_id = len(self._vocab)
                self._vocab[token] = new_id
                self._inv_vocab[new_id] = token
            self._special_tokens[token] = self._vocab[token]
            self._inv_special_tokens[self._vocab[token]] = token
            return self._vocab[token]

        # Added in the original's order: it decides the ids of the tokens the model lacks.
        cls, sep, eod, mask = (add(t) for t in ("<CLS>", "<SEP>", "<EOD>", "<MASK>"))
        model = self._model
        pad = add(_piece_or(model, model.pad_id(), "<PAD>"))
        bos = add(_piece_or(model, model.bos_id(), "<BOS>"))
        eos = add(_piece_or(model, model.eos_id(), "<EOS>"))
        self._set_special_ids(cls=cls, sep=sep, eod=eod, mask=mask, pad=pad, bos=bos, eos=eos)
        for i in range(vocab_extra_ids):
            token = f"<extra_id_{i}>"
            add(token)
            self._t5_tokens.append(token)

    def tokenize(self, text: str) -> list[int]:
        # Cut the text at the earliest special token (ties: the first registered), encode the
        # stretch before it with the model, emit the special id, and continue after it.
        ids: list[int] = []
        idx = 0
        while True:
            best_token, best_pos = None, -1
            for token in self._special_tokens:
                pos = text.find(token, idx)
                if pos >= 0 and (best_token is None or pos < best_pos):
                    best_token, best_pos = token, pos
            if best_token is None:
                break
            ids.extend(self._model.encode_as_ids(text[idx:best_pos]))
            ids.append(self._special_tokens[best_token])
            idx = best_pos + len(best_token)
        ids.extend(self._model.encode_as_ids(text[idx:]))
        return ids

    def detokenize(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        text = ""
        last = 0
        for i, token_id in enumerate(ids):
            if token_id in self._inv_special_tokens:
                text += self._model.decode_ids(ids[last:i]) + " "
                text += self._inv_special_tokens[token_id] + " "
                last = i + 1
        return text + self._model.decode_ids(ids[last:])

    def offsets(self, ids: Sequence[int], text: str) -> list[int]:
        return _piece_begins(self._model, ids)

    @property
    def additional_special_tokens_ids(self) -> list[int] | None:
        return [self._vocab[t] for t in self._t5_tokens]


class GPTSentencePieceTokenizer(SentencePieceTokenizer):
    """The SentencePiece model as is: no added tokens; eod = eos; pad/bos/eos from the model."""

    original_class_name = "_GPTSentencePieceTokenizer"

    def __init__(self, model_file: str) -> None:
        super().__init__(model_file, vocab_extra_ids=0)

    def _setup_special_tokens(self, vocab_extra_ids: int) -> None:
        model, eos = self._model, self._model.eos_id()
        self._set_special_ids(pad=model.pad_id(), bos=model.bos_id(), eos=eos, eod=eos)
        self._set_special_ids(cls=-1, sep=-1, mask=-1)

    def tokenize(self, text: str) -> list[int]:
        return self._model.encode_as_ids(text)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._model.decode_ids([int(i) for i in ids])

    @property
    def additional_special_tokens_ids(self) -> None:
        return None


class Llama2Tokenizer(GPTSentencePieceTokenizer):
    """Llama-2's SentencePiece: bos is prepended to every text; eod = eos.

    `pad` is absent, as in the original (whose pad property fails there), so the GPT dataset
    falls back to pad = -1 exactly as the original run did.
    """

    original_class_name = "_Llama2Tokenizer"

    def _setup_special_tokens(self, vocab_extra_ids: int) -> None:
        super()._setup_special_tokens(vocab_extra_ids)
        del self._special_ids["pad"]  # the original's pad property fails here
        if self._model.vocab_size() != self._model.get_piece_size():
            raise TokenizerError("--tokenizer-model: SentencePiece vocab_size != piece size")

    def tokenize(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TokenizerError(f"Llama2Tokenizer: expected str, got {type(text).__name__}")
        return self._with_bos_eos(self._model.encode(text), bos, eos)
