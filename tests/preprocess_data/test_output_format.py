"""Outputs are the original's bytes: compared with .bin/.idx images built by hand from the spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

GOLDEN_CORPUS = Path("corpus", "tiny_text_document")  # under the golden folder


def test_null_tokenizer_output_equals_hand_built_files(
    tmp_path, cli, spec_files, read_outputs, write_jsonl
):
    texts = ["1 2 3", "7", "10 20 30 40", "99 0"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    run = cli("--input", src, "--output-prefix", tmp_path / "out",
              "--tokenizer-type", "NullTokenizer", "--vocab-size", "100")  # fmt: skip
    assert run.code == 0, run.err
    expected = spec_files([[[int(x) for x in t.split()]] for t in texts], "uint16")
    assert read_outputs(tmp_path / "out_text_document") == expected
    assert "Wrote" in run.out


def test_null_tokenizer_empty_text_is_an_empty_document(
    tmp_path, cli, spec_files, read_outputs, write_jsonl
):
    # An empty text has no ids: a document boundary with no sequence (and no eod), as any
    # other tokenizer's empty text; the document count includes it.
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "1 2"}, {"text": ""}, {"text": "7"}])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--append-eod",
              "--tokenizer-type", "NullTokenizer", "--vocab-size", "100")  # fmt: skip
    assert run.code == 0, run.err
    expected = spec_files([[[1, 2, 100]], [], [[7, 100]]], "uint16")
    assert read_outputs(tmp_path / "out_text_document") == expected
    idx = expected[1]
    sequences, boundaries = (int.from_bytes(idx[a : a + 8], "little") for a in (18, 26))
    assert (sequences, boundaries) == (2, 4)  # three documents: boundaries 0, 1, 1, 2
    start = 34 + sequences * (4 + 8)
    assert np.frombuffer(idx, np.int64, boundaries, start).tolist() == [0, 1, 1, 2]


def test_gpt2_bpe_output_equals_hand_built_files(
    tmp_path, cli, spec_files, read_outputs, write_jsonl, bpe, documents
):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in documents])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *bpe.flags)
    assert run.code == 0, run.err
    # The empty text has no tokens: a document boundary with no sequence, as the original writes.
    expected_docs = [[bpe.encode(t)] if t else [] for t in documents]
    assert read_outputs(tmp_path / "out_text_document") == spec_files(expected_docs, "uint16")


def test_append_eod_ends_every_non_empty_document_with_eod(
    tmp_path, cli, spec_files, read_outputs, write_jsonl, bpe, documents
):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in documents])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--append-eod", *bpe.flags)
    assert run.code == 0, run.err
    expected_docs = [[bpe.encode(t) + [bpe.eod]] if t else [] for t in documents]
    assert read_outputs(tmp_path / "out_text_document") == spec_files(expected_docs, "uint16")


def test_each_json_key_gets_its_own_dataset(
    tmp_path, cli, spec_files, read_outputs, write_jsonl, bpe
):
    records = [{"title": "the cat", "body": "sat on a mat", "id": 1},
               {"title": "far away", "body": "", "id": 2}]  # fmt: skip
    src = write_jsonl(tmp_path / "in.jsonl", records)
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--json-keys", "title", "body",
              "--append-eod", *bpe.flags)  # fmt: skip
    assert run.code == 0, run.err
    for key in ("title", "body"):
        docs = [[bpe.encode(r[key]) + [bpe.eod]] if r[key] else [] for r in records]
        assert read_outputs(tmp_path / f"out_{key}_document") == spec_files(docs, "uint16"), key


def test_list_values_become_one_sequence_per_non_empty_item(
    tmp_path, cli, spec_files, read_outputs, write_jsonl, bpe
):
    # The original's encoder takes a list as already-split sentences, even without splitting.
    records = [{"text": ["the cat sat.", "", "on a mat."]}, {"text": ["far away"]}]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--append-eod", *bpe.flags)
    assert run.code == 0, run.err
    docs = [[bpe.encode("the cat sat."), bpe.encode("on a mat.") + [bpe.eod]],
            [bpe.encode("far away") + [bpe.eod]]]  # fmt: skip
    assert read_outputs(tmp_path / "out_text_document") == spec_files(docs, "uint16")


@pytest.mark.parametrize(
    ("vocab_size", "dtype", "ids"),
    [(65498, "uint16", [65000, 1]), (65499, "int32", [65000, 1]),
     (128255, "int32", [128000, 0, 70000])],  # Llama-3's vocab: ids past 65535
)  # fmt: skip
def test_dtype_is_uint16_below_65500_tokens_else_int32(
    tmp_path, cli, spec_files, read_outputs, write_jsonl, vocab_size, dtype, ids
):
    # NullTokenizer's vocab_size is --vocab-size + 1 (its eod), so 65499 gives 65500: int32.
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": " ".join(map(str, ids))}, {"text": "7"}])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--append-eod",
              "--tokenizer-type", "NullTokenizer", "--vocab-size", str(vocab_size))  # fmt: skip
    assert run.code == 0, run.err
    expected = spec_files([[ids + [vocab_size]], [[7, vocab_size]]], dtype)
    assert read_outputs(tmp_path / "out_text_document") == expected
    code = 8 if dtype == "uint16" else 4
    assert expected[1][17] == code  # the hand-built header's dtype code


def test_golden_corpus_of_the_original_is_reproduced_byte_for_byte(
    tmp_path, cli, spec_files, read_outputs, write_jsonl, golden_dir
):
    # The original wrote this corpus with NullTokenizer --vocab-size 1000 --append-eod.
    golden = golden_dir / GOLDEN_CORPUS
    shutil.copy(golden.with_suffix(".bin"), tmp_path / "golden.bin")
    shutil.copy(golden.with_suffix(".idx"), tmp_path / "golden.idx")
    data = np.fromfile(tmp_path / "golden.bin", dtype=np.uint16)
    idx = (tmp_path / "golden.idx").read_bytes()
    count = int.from_bytes(idx[18:26], "little")
    lengths = np.frombuffer(idx, np.int32, count, 34)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    texts = [" ".join(map(str, data[a : b - 1])) for a, b in zip(bounds[:-1], bounds[1:])]
    assert all(data[b - 1] == 1000 for b in bounds[1:])
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    run = cli("--input", src, "--output-prefix", tmp_path / "ours", "--append-eod",
              "--tokenizer-type", "NullTokenizer", "--vocab-size", "1000")  # fmt: skip
    assert run.code == 0, run.err
    assert read_outputs(tmp_path / "ours_text_document") == read_outputs(tmp_path / "golden")
