"""build_tokenizer covers every --tokenizer-type choice; the package imports without torch."""

from __future__ import annotations

import csv
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from gpt_tokenizers import (
    TOKENIZER_TYPES,
    MultimodalOptions,
    SFTPromptConfig,
    Tokenizer,
    TokenizerError,
    TokenizerFlags,
    build_tokenizer,
)
from gpt_tokenizers.args import FLAG_CONFIGS

PACKAGE_DIR = Path(__import__("gpt_tokenizers").__file__).parent
MODULES = ["gpt_tokenizers"] + sorted(
    f"gpt_tokenizers.{p.stem}" for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"
)


def test_types_are_exactly_the_originals_choices(shared_dir: Path):
    with open(shared_dir / "seed" / "flags.tsv", newline="") as f:
        (row,) = [r for r in csv.DictReader(f, delimiter="\t") if r["flag"] == "--tokenizer-type"]
    assert tuple(row["choices"].split(",")) == TOKENIZER_TYPES


def test_every_type_builds_and_round_trips_its_own_ids(
    gpt2_files, sp_model, tiktoken_rank_file, bert_vocab, hf_dir
):
    rank_path, ranks = tiktoken_rank_file
    configs = {
        "BertWordPieceLowerCase": dict(vocab_file=bert_vocab),
        "BertWordPieceCase": dict(vocab_file=bert_vocab),
        "GPT2BPETokenizer": dict(vocab_file=gpt2_files[0], merge_file=gpt2_files[1]),
        "SentencePieceTokenizer": dict(tokenizer_model=sp_model),
        "GPTSentencePieceTokenizer": dict(tokenizer_model=sp_model),
        "HuggingFaceTokenizer": dict(tokenizer_model=hf_dir),
        "Llama2Tokenizer": dict(tokenizer_model=sp_model),
        "TikTokenizer": dict(
            tokenizer_model=rank_path, tiktoken_pattern="v1", vocab_size=1000 + len(ranks)
        ),
        "MultimodalTokenizer": dict(tokenizer_model=hf_dir),
        "NullTokenizer": dict(vocab_size=100),
        "NullMultimodalTokenizer": dict(vocab_size=100),
        "SFTTokenizer": dict(tokenizer_model=hf_dir),
    }
    assert set(configs) == set(TOKENIZER_TYPES)
    # The non-tokenizer-flag settings: each type reads only its own.
    extra = dict(
        sft_prompt=SFTPromptConfig(sft_tokenizer_prompt_format="default"),
        multimodal=MultimodalOptions(tokenizer_prompt_format="qwen2p5"),
    )
    for kind, options in configs.items():
        lines: list[str] = []
        flags = TokenizerFlags(tokenizer_type=kind, **options)
        tok = build_tokenizer(flags, log=lines.append, **extra)
        assert isinstance(tok, Tokenizer)
        assert lines[0] == f"> building {kind} tokenizer ..."
        text = "12 34 5" if kind.startswith("Null") else "the brother 12"
        ids = tok.tokenize(text)
        assert ids and all(0 <= i < tok.vocab_size for i in ids), kind
        assert isinstance(tok.eod, int), kind
        assert "the brother" in tok.detokenize(ids) or tok.detokenize(ids) == text, kind
        # DataLoader workers started with spawn receive the tokenizer pickled.
        assert pickle.loads(pickle.dumps(tok)).tokenize(text) == ids, kind


def test_unknown_or_missing_type_is_one_line_error():
    with pytest.raises(TokenizerError, match="^--tokenizer-type is required$"):
        build_tokenizer(TokenizerFlags())
    with pytest.raises(TokenizerError, match="^--tokenizer-type: unknown type 'GPT3'"):
        build_tokenizer(TokenizerFlags(tokenizer_type="GPT3"))


def test_missing_and_unreadable_files_name_the_flag_and_path(tmp_path):
    missing = tmp_path / "x"
    cases = {
        "BertWordPieceCase": ("vocab_file", "--vocab-file: no such file: "),
        "GPT2BPETokenizer": ("vocab_file", "--vocab-file: no such file: "),
        "SentencePieceTokenizer": ("tokenizer_model", "--tokenizer-model: no such file: "),
        "HuggingFaceTokenizer": (
            "tokenizer_model",
            "--tokenizer-model: no such file or directory: ",
        ),
        "SFTTokenizer": ("tokenizer_model", "--tokenizer-model: no such file or directory: "),
    }
    sft = SFTPromptConfig()
    for kind, (field, message) in cases.items():
        options = {field: str(missing), "merge_file": str(missing)}
        with pytest.raises(TokenizerError) as info:
            build_tokenizer(TokenizerFlags(tokenizer_type=kind, **options), sft_prompt=sft)
        assert str(info.value) == message + str(missing), kind
    directory = tmp_path / "dir"
    directory.mkdir()
    with pytest.raises(TokenizerError, match="^--vocab-file: is a directory"):
        build_tokenizer(
            TokenizerFlags(tokenizer_type="BertWordPieceCase", vocab_file=str(directory))
        )


def test_the_flag_classes_are_the_config_and_no_other_class_redeclares_a_flag():
    cfg = TokenizerFlags(tokenizer_type="NullTokenizer", vocab_size=3)
    with pytest.raises(AttributeError):
        cfg.vocab_size = 4  # type: ignore[misc]
    flag_names = {f for cls in FLAG_CONFIGS for f in cls.__dataclass_fields__}
    assert {"tokenizer_type", "make_vocab_size_divisible_by", "sft_tokenizer_prompt_format"} <= (
        flag_names
    )
    # MultimodalOptions holds only settings pretrain_gpt has no flag for.
    assert not flag_names & set(MultimodalOptions.__dataclass_fields__)


def test_sft_and_multimodal_types_need_their_settings_handed_over(hf_dir):
    flags = TokenizerFlags(tokenizer_type="SFTTokenizer", tokenizer_model=hf_dir)
    with pytest.raises(TokenizerError, match="^--tokenizer-type SFTTokenizer: .*sft_prompt="):
        build_tokenizer(flags)
    flags = TokenizerFlags(tokenizer_type="MultimodalTokenizer", tokenizer_model=hf_dir)
    with pytest.raises(TokenizerError, match="needs a prompt format"):
        build_tokenizer(flags, sft_prompt=SFTPromptConfig())


def test_every_module_imports_without_torch():
    assert "gpt_tokenizers.gpt2_bpe" in MODULES and len(MODULES) >= 17
    code = "import sys\nsys.modules['torch'] = None\n" + "".join(f"import {m}\n" for m in MODULES)
    code += "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
