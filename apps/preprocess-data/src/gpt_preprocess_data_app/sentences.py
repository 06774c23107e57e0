"""Sentence splitting for --split-sentences: NLTK's punkt model, loaded from local data only.

Nothing is downloaded (the original calls nltk.download): a missing nltk or missing punkt data
is a one-line error that says what to install. Newer nltk ships punkt as `punkt_tab` and refuses
the old pickles; both layouts are tried, newest first.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Protocol

from .errors import PreprocessError

MAX_SPLIT_CHARS = 1_000_000
"""The original hands punkt at most this many characters at a time (it splits longer texts)."""


class SentenceSplitter(Protocol):
    def tokenize(self, text: str) -> list[str]: ...


def _import_punkt() -> Any:
    try:
        from nltk.tokenize import punkt
    except ImportError:
        raise PreprocessError(
            "--split-sentences needs NLTK, which is not installed "
            "(pip install nltk; python -m nltk.downloader punkt_tab); nothing is downloaded"
        ) from None
    return punkt


@lru_cache(maxsize=1)
def _newline_keeping_vars(punkt: Any) -> type:
    """Punkt language variables whose sentence-end context does not swallow the newline after it.

    The original's --keep-newlines variant: after the sentence-ending characters it allows zero
    or more spaces (instead of one or more), so trailing whitespace, newlines included, stays with
    the sentence it ends.
    """

    class KeepNewlinesLanguageVars(punkt.PunktLanguageVars):
        _period_context_fmt = r"""
            \S*                    # word characters before the candidate ending
            %(SentEndChars)s       # the candidate sentence ending
            \s*                    # any whitespace, possibly none (punkt's default needs some)
            (?=(?P<after_tok>
                %(NonWord)s        # punctuation follows
                |
                (?P<next_tok>\S+)  # or the next word, right after the whitespace
            ))"""

    return KeepNewlinesLanguageVars


def _load_punkt(punkt: Any, lang: str) -> Any:
    import nltk

    if hasattr(punkt, "PunktTokenizer"):  # nltk >= 3.8.2: tokenizers/punkt_tab/<lang>/
        try:
            return punkt.PunktTokenizer(lang)
        except Exception:  # LookupError when missing; anything else means unusable data too
            pass
    nltk_data = os.environ.get("NLTK_DATA")
    if nltk_data:  # where the original looks when NLTK_DATA is set
        resource = "file:" + os.path.join(nltk_data, "tokenizers", "punkt", f"{lang}.pickle")
    else:
        resource = f"nltk:tokenizers/punkt/{lang}.pickle"
    try:
        return nltk.data.load(resource)
    except Exception:  # missing, or a pickle that this nltk refuses to load
        pass
    where = f"NLTK_DATA={nltk_data}" if nltk_data else "nltk.data.path"
    raise PreprocessError(
        f"--split-sentences: no NLTK punkt data for --lang {lang} in {where} (looked for "
        f"tokenizers/punkt_tab/{lang}/ and tokenizers/punkt/{lang}.pickle); install it with "
        "python -m nltk.downloader punkt_tab (nothing is downloaded automatically)"
    )


def load_sentence_splitter(lang: str, keep_newlines: bool) -> SentenceSplitter:
    """The punkt sentence splitter for `lang`, optionally keeping newlines with their sentence."""
    punkt = _import_punkt()
    splitter = _load_punkt(punkt, lang)
    if keep_newlines:
        splitter = punkt.PunktSentenceTokenizer(
            train_text=splitter._params, lang_vars=_newline_keeping_vars(punkt)()
        )
    return splitter


def split_sentences(splitter: SentenceSplitter, text: str) -> list[str]:
    """The sentences of `text`, handing the splitter at most MAX_SPLIT_CHARS at a time."""
    if len(text) <= MAX_SPLIT_CHARS:
        return list(splitter.tokenize(text))
    sentences: list[str] = []
    for start in range(0, len(text), MAX_SPLIT_CHARS):
        sentences.extend(splitter.tokenize(text[start : start + MAX_SPLIT_CHARS]))
    return sentences
