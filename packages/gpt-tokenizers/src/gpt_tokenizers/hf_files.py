"""Reading a HuggingFace tokenizer from local files with the `tokenizers` library (no transformers).

A directory holds tokenizer.json plus, optionally, tokenizer_config.json, special_tokens_map.json
and chat_template.jinja; a tokenizer.json path reads those siblings too. Special tokens follow
transformers' AutoTokenizer: tokenizer_config.json, overridden by special_tokens_map.json, with
the class defaults of the common tokenizer classes; named special tokens missing from the
vocab are added, as transformers does when it loads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .cleanup import clean_up_tokenization
from .errors import TokenizerError, check_file_or_dir, read_json, read_text

SPECIAL_ROLES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)

# transformers' constructor defaults of the tokenizer classes most checkpoints name.
_CLASS_DEFAULTS: dict[str, dict[str, str]] = {
    "GPT2Tokenizer": dict.fromkeys(("bos_token", "eos_token", "unk_token"), "<|endoftext|>"),
    "LlamaTokenizer": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "CodeLlamaTokenizer": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "BertTokenizer": {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    },
}


def import_tokenizers(what: str):
    """Import the HF `tokenizers` library or explain in one line how to get it."""
    try:
        import tokenizers
    except ImportError as e:
        raise TokenizerError(
            f"{what} needs the HuggingFace `tokenizers` library: "
            "pip install tokenizers (or gpt-tokenizers[hf])"
        ) from e
    return tokenizers


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(flag: str, path: str) -> dict[str, Any]:
    data = read_json(flag, path)
    if not isinstance(data, dict):
        raise TokenizerError(f"{flag}: {path} is not a JSON object")
    return data


@dataclass
class HFTokenizerFiles:
    """A loaded `tokenizers.Tokenizer` and what transformers would read beside it."""

    tokenizer: Any
    special_tokens: dict[str, str | None] = field(default_factory=dict)
    chat_template: str | None = None
    clean_up_tokenization_spaces: bool = False

    def token_id(self, token: str | None) -> int | None:
        """Id of a token string; unknown strings map to unk (None without one), as transformers."""
        if token is None:
            return None
        found = self.tokenizer.token_to_id(token)
        if found is not None:
            return found
        unk = self.special_tokens.get("unk_token")
        return None if unk is None else self.tokenizer.token_to_id(unk)

    def special_id(self, role: str) -> int | None:
        """Id of a named special token such as 'eos_token' (None when the tokenizer has none)."""
        return self.token_id(self.special_tokens.get(role))


def load_hf_tokenizer(path: str, what: str, flag: str = "--tokenizer-model") -> HFTokenizerFiles:
    """Load tokenizer.json (from a directory or the file itself) and its special-token config."""
    tokenizers = import_tokenizers(what)
    check_file_or_dir(flag, path)
    if os.path.isdir(path):
        directory, tokenizer_json = path, os.path.join(path, "tokenizer.json")
        if not os.path.isfile(tokenizer_json):
            raise TokenizerError(
                f"{flag}: no tokenizer.json in {path} ({what} loads fast HuggingFace tokenizers)"
            )
    else:
        directory, tokenizer_json = os.path.dirname(path) or ".", path
    text = read_text(flag, tokenizer_json)
    try:
        tokenizer = tokenizers.Tokenizer.from_str(text)
    except Exception as e:  # the Rust loader raises plain Exception subclasses
        raise TokenizerError(
            f"{flag}: not a HuggingFace tokenizer.json: {tokenizer_json} ({e})"
        ) from e

    config_path = os.path.join(directory, "tokenizer_config.json")
    config = _read_json(flag, config_path) if os.path.isfile(config_path) else {}
    map_path = os.path.join(directory, "special_tokens_map.json")
    special_map = _read_json(flag, map_path) if os.path.isfile(map_path) else {}

    class_name = str(config.get("tokenizer_class") or "").removesuffix("Fast")
    specials: dict[str, str | None] = dict(_CLASS_DEFAULTS.get(class_name, {}))
    for source in (config, special_map):
        for role in SPECIAL_ROLES:
            if role in source:
                specials[role] = _token_text(source[role])
    extra = [
        _token_text(t)
        for t in special_map.get(
            "additional_special_tokens", config.get("additional_special_tokens", [])
        )
    ]
    missing = [t for t in [*specials.values(), *extra] if t and tokenizer.token_to_id(t) is None]
    if missing:
        tokenizer.add_special_tokens(list(dict.fromkeys(missing)))

    template_file = os.path.join(directory, "chat_template.jinja")
    if os.path.isfile(template_file):
        chat_template: str | None = read_text(flag, template_file)
    else:
        chat_template = config.get("chat_template")
        if isinstance(chat_template, list):  # named templates: use the default one
            named = {t.get("name"): t.get("template") for t in chat_template if isinstance(t, dict)}
            chat_template = named.get("default")
    return HFTokenizerFiles(
        tokenizer=tokenizer,
        special_tokens=specials,
        chat_template=chat_template if isinstance(chat_template, str) else None,
        clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
    )


def decode(files: HFTokenizerFiles, ids: list[int]) -> str:
    """transformers' `decode(ids)`: special tokens kept, clean-up as the tokenizer config says."""
    text = files.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
    return clean_up_tokenization(text) if files.clean_up_tokenization_spaces else text
