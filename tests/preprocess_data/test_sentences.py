"""--split-sentences: one sequence per sentence in `_sentence` datasets; NLTK is never downloaded."""

from __future__ import annotations

import importlib.util

import gpt_preprocess_data_app.encode as encode
import gpt_preprocess_data_app.main as app_main
import gpt_preprocess_data_app.sentences as sentences
import pytest
from gpt_preprocess_data_app.errors import PreprocessError

HAS_NLTK = importlib.util.find_spec("nltk") is not None


class PeriodSplitter:
    """Splits after each '. ' (a stand-in for punkt, so the test needs no NLTK data)."""

    def tokenize(self, text: str) -> list[str]:
        parts = text.split(". ")
        return [p + "." for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@pytest.fixture
def fake_punkt(monkeypatch) -> list[tuple[str, bool]]:
    calls: list[tuple[str, bool]] = []

    def load(lang: str, keep_newlines: bool) -> PeriodSplitter:
        calls.append((lang, keep_newlines))
        return PeriodSplitter()

    monkeypatch.setattr(encode, "load_sentence_splitter", load)
    monkeypatch.setattr(app_main, "load_sentence_splitter", load)
    return calls


def test_split_sentences_writes_one_sequence_per_sentence(
    tmp_path, cli, bpe, fake_punkt, write_jsonl, spec_files, read_outputs
):
    texts = ["the cat sat. on a mat. far away", "", "and then. "]
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--split-sentences",
              "--keep-newlines", "--lang", "german", "--append-eod", *bpe.flags)  # fmt: skip
    assert run.code == 0, run.err
    assert fake_punkt and set(fake_punkt) == {("german", True)}
    docs = [
        [bpe.encode("the cat sat."), bpe.encode("on a mat."), bpe.encode("far away") + [bpe.eod]],
        [],
        [bpe.encode("and then.") + [bpe.eod]],
    ]
    assert read_outputs(tmp_path / "out_text_sentence") == spec_files(docs, "uint16")
    assert not (tmp_path / "out_text_document.bin").exists()


def test_long_text_reaches_the_splitter_in_chunks_of_a_million_characters():
    seen: list[int] = []

    class Recorder:
        def tokenize(self, text: str) -> list[str]:
            seen.append(len(text))
            return [text]

    parts = sentences.split_sentences(Recorder(), "x" * 2_500_000)
    assert seen == [1_000_000, 1_000_000, 500_000] and len("".join(parts)) == 2_500_000


@pytest.mark.skipif(HAS_NLTK, reason="nltk is installed")
def test_split_sentences_without_nltk_is_a_one_line_error(tmp_path, cli, bpe, write_jsonl):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "One. Two."}])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--split-sentences", *bpe.flags)
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --split-sentences needs NLTK")
    assert "nothing is downloaded" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@pytest.mark.skipif(not HAS_NLTK, reason="nltk is not installed")
def test_split_sentences_with_nltk_punkt_splits_or_explains_missing_data(
    tmp_path, cli, bpe, write_jsonl, spec_files, read_outputs
):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "The cat sat. It ran away."}])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--split-sentences", *bpe.flags)
    if run.code == 2:  # nltk without its punkt data: a one-line error, nothing downloaded
        lines = run.err.strip().splitlines()
        assert len(lines) == 1 and "no NLTK punkt data" in lines[0]
        return
    assert run.code == 0, run.err
    docs = [[bpe.encode("The cat sat."), bpe.encode("It ran away.")]]
    assert read_outputs(tmp_path / "out_text_sentence") == spec_files(docs, "uint16")


def _fake_nltk(monkeypatch, has_data: bool) -> list[dict]:
    """An `nltk` module with punkt's API surface, so the loading logic runs without NLTK."""
    import sys
    import types

    made: list[dict] = []

    class PunktLanguageVars:
        _period_context_fmt = r"\S* %(SentEndChars)s \s+ (?=...)"

    class PunktSentenceTokenizer:
        def __init__(self, train_text=None, lang_vars=None):
            self._params = train_text
            made.append({"params": train_text, "lang_vars": lang_vars})

    class PunktTokenizer(PunktSentenceTokenizer):
        def __init__(self, lang="english"):
            if not has_data:
                raise LookupError("Resource punkt_tab not found.\n  (a long, multi-line message)")
            super().__init__(train_text=f"params-{lang}")

    nltk = types.ModuleType("nltk")
    nltk.data = types.SimpleNamespace(load=lambda url: (_ for _ in ()).throw(LookupError(url)))
    tokenize = types.ModuleType("nltk.tokenize")
    punkt = types.ModuleType("nltk.tokenize.punkt")
    punkt.PunktLanguageVars = PunktLanguageVars
    punkt.PunktSentenceTokenizer = PunktSentenceTokenizer
    punkt.PunktTokenizer = PunktTokenizer
    nltk.tokenize, tokenize.punkt = tokenize, punkt
    for name, module in (
        ("nltk", nltk),
        ("nltk.tokenize", tokenize),
        ("nltk.tokenize.punkt", punkt),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    return made


def test_keep_newlines_rebuilds_punkt_with_newline_keeping_language_vars(monkeypatch):
    made = _fake_nltk(monkeypatch, has_data=True)
    splitter = sentences.load_sentence_splitter("english", keep_newlines=True)
    assert splitter._params == "params-english" and len(made) == 2
    lang_vars = made[-1]["lang_vars"]
    # After the sentence end: any whitespace, possibly none, and the next word right after it.
    assert r"%(SentEndChars)s" in lang_vars._period_context_fmt
    assert r"\s*" in lang_vars._period_context_fmt
    assert r"(?P<next_tok>\S+)" in lang_vars._period_context_fmt


def test_missing_punkt_data_is_a_one_line_error_without_download(monkeypatch):
    _fake_nltk(monkeypatch, has_data=False)
    monkeypatch.delenv("NLTK_DATA", raising=False)
    with pytest.raises(PreprocessError) as err:
        sentences.load_sentence_splitter("english", keep_newlines=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("--split-sentences: no NLTK punkt data for --lang english")
