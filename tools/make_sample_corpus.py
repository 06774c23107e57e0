"""Write the shipped sample corpus and its tokenizer: `examples/tiny-corpus/`.

The text is the docstrings of the Python standard library on this machine (real English prose,
no download), one JSON line per documented module, class or function with at least 200 characters.
The tokenizer is a GPT-2 style byte-level BPE (vocab.json + merges.txt, 4096 entries plus
`<|endoftext|>`) trained on that text with the `tokenizers` library, so the README can show the
whole path: JSONL -> preprocess-data -> .bin/.idx -> pretrain.

    uv run --frozen python tools/make_sample_corpus.py
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import warnings
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "examples" / "tiny-corpus"
MAX_BYTES = 2_000_000
SKIP = ("test", "idlelib", "tkinter", "turtle", "antigravity", "this", "__main__", "lib2to3")


def documents() -> list[str]:
    docs: list[str] = []
    seen: set[str] = set()
    names = sorted(
        name
        for name in sys.stdlib_module_names
        if not name.startswith("_") and not any(name.startswith(s) for s in SKIP)
    )
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # some modules need a display, a platform or a C library
            continue
        objects = [module] + [
            obj
            for _, obj in sorted(vars(module).items())
            if (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == name
        ]
        for obj in objects:
            text = inspect.getdoc(obj) or ""
            if len(text) >= 200 and text not in seen:
                seen.add(text)
                docs.append(text)
    return docs


def main() -> None:
    from tokenizers import ByteLevelBPETokenizer

    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    lines = []
    for text in documents():
        line = json.dumps({"text": text}, ensure_ascii=False)
        if total + len(line) > MAX_BYTES:
            break
        lines.append(line)
        total += len(line) + 1
    corpus = OUT / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = ByteLevelBPETokenizer()
    texts = [json.loads(line)["text"] for line in lines]
    tokenizer.train_from_iterator(
        texts, vocab_size=4096, min_frequency=2, special_tokens=["<|endoftext|>"]
    )
    tokenizer.save_model(str(OUT))
    print(f"{corpus}: {len(lines)} documents, {total / 1e6:.2f} MB; vocab.json, merges.txt")


if __name__ == "__main__":
    main()
