"""The decode clean-up BERT and transformers share: no space before punctuation or contractions."""

from __future__ import annotations

_REPLACEMENTS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def clean_up_tokenization(text: str) -> str:
    """Undo the spacing a word-level tokenizer puts before punctuation and English contractions."""
    for before, after in _REPLACEMENTS:
        text = text.replace(before, after)
    return text
