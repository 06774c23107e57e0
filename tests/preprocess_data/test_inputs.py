"""Input forms: gzip, globs with partitions (merged as the original), Parquet, several workers."""

from __future__ import annotations

import gzip
import json

import gpt_preprocess_data_app.inputs as inputs
import pytest

NULL = ["--tokenizer-type", "NullTokenizer", "--vocab-size", "1000"]


def _texts(n: int, start: int = 0) -> list[str]:
    return [
        " ".join(str((start + i * 7 + j) % 1000) for j in range(1 + (start + i) % 5))
        for i in range(n)
    ]


def test_gzip_input_gives_the_same_bytes_as_plain(
    tmp_path, cli, bpe, documents, write_jsonl, read_outputs
):
    plain = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in documents])
    packed = tmp_path / "in.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for src, out in ((plain, "plain"), (packed, "packed")):
        run = cli("--input", src, "--output-prefix", tmp_path / out, "--append-eod", *bpe.flags)
        assert run.code == 0, run.err
    assert read_outputs(tmp_path / "packed_text_document") == read_outputs(
        tmp_path / "plain_text_document"
    )


def _three_files(tmp_path, write_jsonl) -> list[str]:
    texts = _texts(11)
    (tmp_path / "parts").mkdir()
    write_jsonl(tmp_path / "parts" / "b.jsonl", [{"text": t} for t in texts[4:9]])
    write_jsonl(tmp_path / "parts" / "a.jsonl", [{"text": t} for t in texts[:4]])
    gz = tmp_path / "parts" / "c.jsonl.gz"
    gz.write_bytes(
        gzip.compress(b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts[9:]))
    )
    return texts  # in sorted file order: a, b, c


def test_glob_with_round_robin_partitions_orders_documents_as_the_original(
    tmp_path, cli, write_jsonl, read_outputs
):
    texts = _three_files(tmp_path, write_jsonl)
    # The original deals lines round-robin into partitions and merges partition 0, 1, 2 in order.
    dealt = [t for p in range(3) for i, t in enumerate(texts) if i % 3 == p]
    write_jsonl(tmp_path / "dealt.jsonl", [{"text": t} for t in dealt])
    run = cli("--input", tmp_path / "dealt.jsonl", "--output-prefix", tmp_path / "single",
              "--append-eod", *NULL)  # fmt: skip
    assert run.code == 0, run.err
    run = cli("--input", tmp_path / "parts" / "*.jsonl*", "--output-prefix", tmp_path / "merged",
              "--partitions", "3", "--append-eod", *NULL)  # fmt: skip
    assert run.code == 0, run.err
    assert read_outputs(tmp_path / "merged_text_document") == read_outputs(
        tmp_path / "single_text_document"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            "parts",
            "dealt.jsonl",
            "single_text_document.bin",
            "single_text_document.idx",
            "merged_text_document.bin",
            "merged_text_document.idx",
        ]  # fmt: skip
    ), "the partition scratch files must be gone"


def test_glob_with_sequential_partitions_gives_the_bytes_of_one_run(
    tmp_path, cli, write_jsonl, read_outputs
):
    texts = _three_files(tmp_path, write_jsonl)
    write_jsonl(tmp_path / "all.jsonl", [{"text": t} for t in texts])
    run = cli("--input", tmp_path / "all.jsonl", "--output-prefix", tmp_path / "single", *NULL)
    assert run.code == 0, run.err
    run = cli("--input", tmp_path / "parts" / "*", "--output-prefix", tmp_path / "merged",
              "--partitions", "2", "--keep-sequential-samples", *NULL)  # fmt: skip
    assert run.code == 0, run.err
    assert read_outputs(tmp_path / "merged_text_document") == read_outputs(
        tmp_path / "single_text_document"
    )


def test_two_workers_give_the_same_bytes_as_one(
    tmp_path, cli, write_jsonl, read_outputs, monkeypatch
):
    monkeypatch.setattr(inputs, "BLOCK_BYTES", 256)  # many small batches, so order matters
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in _texts(300)])
    for workers in ("1", "2"):
        run = cli("--input", src, "--output-prefix", tmp_path / f"w{workers}",
                  "--workers", workers, "--append-eod", *NULL)  # fmt: skip
        assert run.code == 0, run.err
    assert read_outputs(tmp_path / "w2_text_document") == read_outputs(
        tmp_path / "w1_text_document"
    )


def test_line_longer_than_a_read_block_is_one_document(
    tmp_path, cli, write_jsonl, read_outputs, spec_files, monkeypatch
):
    monkeypatch.setattr(inputs, "BLOCK_BYTES", 16)
    long_text = " ".join(str(i % 1000) for i in range(200))
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "5"}, {"text": long_text}, {"text": "6 7"}])
    src.write_bytes(src.read_bytes().rstrip(b"\n"))  # and a last line without its newline
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *NULL)
    assert run.code == 0, run.err
    docs = [[[5]], [[i % 1000 for i in range(200)]], [[6, 7]]]
    assert read_outputs(tmp_path / "out_text_document") == spec_files(docs, "uint16")


def test_parquet_input_gives_the_same_bytes_as_jsonl(
    tmp_path, cli, bpe, documents, write_jsonl, read_outputs, monkeypatch
):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setattr(inputs, "PARQUET_ROWS", 2)  # several record batches
    titles = [f"title {i}" for i in range(len(documents))]
    table = pa.table({"text": documents, "title": titles, "id": list(range(len(documents)))})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=3)
    write_jsonl(tmp_path / "in.jsonl", [{"text": t, "title": s} for t, s in zip(documents, titles)])
    for src in ("in.parquet", "in.jsonl"):
        run = cli("--input", tmp_path / src, "--output-prefix", tmp_path / src.replace(".", "_"),
                  "--json-keys", "text", "title", "--append-eod", "--workers", "2", *bpe.flags)  # fmt: skip
        assert run.code == 0, run.err
    for key in ("text", "title"):
        assert read_outputs(tmp_path / f"in_parquet_{key}_document") == read_outputs(
            tmp_path / f"in_jsonl_{key}_document"
        )


def test_parquet_without_the_column_is_a_one_line_error(tmp_path, cli):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"body": ["1 2"]}), tmp_path / "in.parquet")
    run = cli("--input", tmp_path / "in.parquet", "--output-prefix", tmp_path / "out", *NULL)
    assert run.code == 2
    assert (
        run.err.strip()
        == f"error: {tmp_path / 'in.parquet'}: no column 'text' for --json-keys (columns: body)"
    )


def test_plain_jsonl_is_encoded_without_the_careful_path(
    tmp_path, cli, bpe, documents, write_jsonl, spec_files, read_outputs, monkeypatch
):
    from gpt_preprocess_data_app.encode import Encoder

    def careful(self, batch):
        raise AssertionError(f"careful path used for {batch.source}:{batch.first_line}")

    monkeypatch.setattr(Encoder, "_encode_careful", careful)
    records = [{"text": t, "title": t[:5], "id": i} for i, t in enumerate(documents)]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    src.write_bytes(src.read_bytes() + b"\n")  # a trailing blank line is no document
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--json-keys", "text",
              "title", "--append-eod", "--partitions", "2", *bpe.flags)  # fmt: skip
    assert run.code == 0, run.err
    for key in ("text", "title"):
        dealt = [r[key] for r in records[0::2]] + [r[key] for r in records[1::2]]
        expected = [[bpe.encode(t) + [bpe.eod]] if t else [] for t in dealt]
        assert read_outputs(tmp_path / f"out_{key}_document") == spec_files(expected, "uint16")


@pytest.mark.parametrize(
    "layout",
    ["crlf", "blank lines", "padded lines", "list values"],
)
def test_unusual_but_valid_lines_give_the_same_bytes_as_plain_ones(
    tmp_path, cli, write_jsonl, read_outputs, layout
):
    texts = _texts(40)
    lines = [json.dumps({"text": t}) for t in texts]
    if layout == "crlf":
        data = "".join(line + "\r\n" for line in lines)
    elif layout == "blank lines":
        data = "".join(
            line + "\n" + "\n" * (i % 3) + " " * (i % 2 == 0) + "\n" for i, line in enumerate(lines)
        )
    elif layout == "padded lines":  # json.loads accepts whitespace around the object
        data = "".join(f"  {line}\t \n" for line in lines)
    else:  # pre-split sentences: one sequence per item, as the original's encoder takes them
        data = "".join(json.dumps({"text": [t]}) + "\n" for t in texts)
    (tmp_path / "odd.jsonl").write_bytes(data.encode())
    write_jsonl(tmp_path / "plain.jsonl", [{"text": t} for t in texts])
    for name in ("odd", "plain"):
        run = cli("--input", tmp_path / f"{name}.jsonl", "--output-prefix", tmp_path / name,
                  "--append-eod", *NULL)  # fmt: skip
        assert run.code == 0, run.err
    assert read_outputs(tmp_path / "odd_text_document") == read_outputs(
        tmp_path / "plain_text_document"
    )


def test_spawned_workers_give_the_same_bytes_as_forked_ones(
    tmp_path, cli, write_jsonl, read_outputs, monkeypatch, bpe
):
    # Forked workers reuse the parent's tokenizer; spawned ones (used when forking is unsafe,
    # e.g. with torch loaded) build their own from the settings.
    monkeypatch.setattr(inputs, "BLOCK_BYTES", 512)
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in _texts(200)])
    for method in ("fork", "spawn"):
        monkeypatch.setenv("GPT_PREPROCESS_START_METHOD", method)
        run = cli("--input", src, "--output-prefix", tmp_path / method, "--workers", "2",
                  "--append-eod", *bpe.flags)  # fmt: skip
        assert run.code == 0, run.err
    assert read_outputs(tmp_path / "spawn_text_document") == read_outputs(
        tmp_path / "fork_text_document"
    )
