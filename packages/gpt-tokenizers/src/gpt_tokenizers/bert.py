"""BertWordPieceLowerCase / BertWordPieceCase: WordPiece over a BERT vocab.txt.

Like the original, it appends [BOS] and [EOS] (when absent) and `--vocab-extra-ids`
<extra_id_i> tokens after the file's tokens; eod is [EOS].
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Tokenizer
from .errors import TokenizerError, read_text
from .wordpiece import basic_tokenize, join_wordpieces, wordpiece


def load_bert_vocab(path: str, flag: str = "--vocab-file") -> dict[str, int]:
    """One token per line, id = line number; surrounding whitespace is stripped (as the original)."""
    lines = read_text(flag, path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for index, line in enumerate(lines):
        # A later duplicate line takes the later id, as the original's dict assignment does.
        vocab[line.strip()] = index
    return vocab


class BertWordPieceTokenizer(Tokenizer):
    """BERT WordPiece, lower-cased (with accent stripping) or cased."""

    original_class_name = "_BertWordPieceTokenizer"

    def __init__(self, vocab_file: str, lower_case: bool = True, vocab_extra_ids: int = 0) -> None:
        super().__init__(vocab_file, lower_case=lower_case, vocab_extra_ids=vocab_extra_ids)
        self._lower_case = lower_case
        self._vocab = load_bert_vocab(vocab_file)
        self._inv_vocab = {i: t for t, i in self._vocab.items()}
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]") if t not in self._vocab]
        if missing:
            raise TokenizerError(
                f"--vocab-file: {vocab_file} lacks the BERT special tokens {' '.join(missing)}"
            )
        self._add_token("[BOS]")
        self._add_token("[EOS]")
        eos = self._vocab["[EOS]"]
        self._set_special_ids(
            cls=self._vocab["[CLS]"],
            sep=self._vocab["[SEP]"],
            pad=self._vocab["[PAD]"],
            mask=self._vocab["[MASK]"],
            bos=self._vocab["[BOS]"],
            eos=eos,
            eod=eos,
        )
        self._extra_tokens = [f"<extra_id_{i}>" for i in range(vocab_extra_ids)]
        for token in self._extra_tokens:
            self._add_token(token)

    def _add_token(self, token: str) -> None:
        if token not in self._vocab:
            new_id = len(self._vocab)
            self._inv_vocab[new_id] = token
            self._vocab[token] = new_id

    def tokenize(self, text: str) -> list[int]:
        ids = []
        for word in basic_tokenize(text, self._lower_case):
            ids.extend(self._vocab[piece] for piece in wordpiece(word, self._vocab))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids to text, joining ## continuations (the original's decode)."""
        return join_wordpieces([self._inv_vocab[int(i)] for i in ids])

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.decode(ids)

    def decode_token_ids(self, ids: Sequence[int]) -> str:
        """Ids to text without [PAD]/[CLS], each word prefixed by a space (the original's variant)."""
        out = ""
        for token in (self._inv_vocab[int(i)] for i in ids):
            if token in ("[PAD]", "[CLS]"):
                continue
            out += token[2:] if token.startswith("##") else " " + token
        return out

    @property
    def bos_token(self) -> str:
        return "[BOS]"

    @property
    def eos_token(self) -> str:
        return "[EOS]"

    @property
    def additional_special_tokens(self) -> list[str]:
        return list(self._extra_tokens)

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        return [self._vocab[t] for t in self._extra_tokens]
