"""Bad input stops with `error: <file>:<line>: <what>` and exit code 2, and leaves no output."""

from __future__ import annotations

import json

import gpt_preprocess_data_app.inputs as inputs
import pytest

NULL = ["--tokenizer-type", "NullTokenizer", "--vocab-size", "1000"]


def _lines(tmp_path, lines: list[str]):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _no_outputs(directory) -> list[str]:
    """Anything a run left besides the input: datasets, temporary files, scratch directories."""
    return sorted(p.name for p in directory.iterdir() if p.name != "in.jsonl")


def test_malformed_json_line_stops_with_file_line_and_exit_code_2(tmp_path, cli):
    src = _lines(tmp_path, ['{"text": "1 2"}', '{"text": "3"}', '{"text": "4" oops}'])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *NULL)
    assert run.code == 2
    assert run.err.strip().splitlines()[-1] == (
        f"error: {src}:3: malformed JSON: Expecting ',' delimiter at column 14"
    )
    assert _no_outputs(tmp_path) == []


def test_missing_key_stops_with_file_line_and_the_keys_present(tmp_path, cli):
    src = _lines(tmp_path, ['{"text": "1 2"}', '{"body": "3", "id": 7}'])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *NULL)
    assert run.code == 2
    assert run.err.strip().splitlines()[-1] == f"error: {src}:2: no key 'text' (keys: body, id)"


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ('["1 2"]', "expected a JSON object, got a list with non-string items"),
        ('{"text": 12}', "key 'text' is a number, expected a string or a list of strings"),
        ('{"text": "1 x"}', "key 'text': the tokenizer failed: NullTokenizer: text must be"),
    ],
)
def test_unusable_record_names_its_line_and_what_is_wrong(tmp_path, cli, line, what):
    src = _lines(tmp_path, ['{"text": "1"}', line])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *NULL)
    assert run.code == 2
    assert run.err.strip().splitlines()[-1].startswith(f"error: {src}:2: {what}")


def test_invalid_utf8_names_its_line(tmp_path, cli):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "1"}\n{"text": "\xff"}\n')
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *NULL)
    assert run.code == 2
    assert run.err.strip().splitlines()[-1].startswith(f"error: {src}:2: not valid UTF-8")


@pytest.mark.parametrize("flags", [[], ["--workers", "2"], ["--partitions", "2"]])
def test_failure_midway_leaves_no_dataset_and_no_temporary_file(tmp_path, cli, monkeypatch, flags):
    monkeypatch.setattr(inputs, "BLOCK_BYTES", 512)  # many batches are written before the failure
    lines = [json.dumps({"text": f"{i} {i + 1}"}) for i in range(400)]
    lines[350] = '{"text": '
    src = _lines(tmp_path, lines)
    # A finished dataset of an earlier run is replaced only by a finished one.
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *NULL, *flags)
    assert run.code == 2
    assert f"{src}:351: malformed JSON" in run.err
    assert _no_outputs(tmp_path) == []


def test_skip_bad_lines_skips_and_counts_them(tmp_path, cli, spec_files, read_outputs):
    src = _lines(tmp_path, ['{"text": "1 2"}', "not json", "", '{"body": "5"}', '{"text": "3"}'])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--skip-bad-lines", *NULL)
    assert run.code == 0, run.err
    assert f"Skipped 2 bad lines (--skip-bad-lines); first: {src}:2: malformed JSON" in run.err
    # The blank line is neither a document nor a bad line.
    assert read_outputs(tmp_path / "out_text_document") == spec_files([[[1, 2]], [[3]]], "uint16")


def test_token_id_that_does_not_fit_the_dtype_is_an_error(tmp_path, cli):
    src = _lines(tmp_path, ['{"text": "1 70000"}'])
    run = cli("--input", src, "--output-prefix", tmp_path / "out", *NULL)
    assert run.code == 2
    assert "a token id does not fit the dataset dtype uint16" in run.err
    assert _no_outputs(tmp_path) == []


def test_missing_input_and_output_directory_are_one_line_errors(tmp_path, cli):
    run = cli("--input", tmp_path / "nope*.jsonl", "--output-prefix", tmp_path / "out", *NULL)
    assert (run.code, run.err.strip()) == (
        2, f"error: --input: no such file (and no file matches the glob): {tmp_path / 'nope*.jsonl'}"
    )  # fmt: skip
    src = _lines(tmp_path, ['{"text": "1"}'])
    run = cli("--input", src, "--output-prefix", tmp_path / "no" / "out", *NULL)
    assert (run.code, run.err.strip()) == (
        2, f"error: --output-prefix: directory does not exist: {tmp_path / 'no'}"
    )  # fmt: skip


def test_tokenizer_errors_are_one_line(tmp_path, cli):
    src = _lines(tmp_path, ['{"text": "1"}'])
    run = cli("--input", src, "--output-prefix", tmp_path / "out",
              "--tokenizer-type", "GPT2BPETokenizer", "--merge-file", src)  # fmt: skip
    assert (run.code, run.err.strip()) == (
        2, "error: --tokenizer-type GPT2BPETokenizer needs --vocab-file"
    )  # fmt: skip
    run = cli("--input", src, "--output-prefix", tmp_path / "out")
    assert (run.code, run.err.strip()) == (2, "error: --tokenizer-type is required")
