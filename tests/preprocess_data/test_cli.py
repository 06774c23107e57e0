"""The program as users run it: a subprocess from the workspace root, and its progress lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NULL = ["--tokenizer-type", "NullTokenizer", "--vocab-size", "1000"]


def test_subprocess_run_with_two_workers_writes_the_dataset(tmp_path, spec_files, read_outputs):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"{i} {i + 1}"}) + "\n" for i in range(50)))
    done = subprocess.run(
        [sys.executable, "apps/preprocess-data", "--input", str(src), "--output-prefix",
         str(tmp_path / "out"), "--workers", "2", "--append-eod", "--log-interval", "20", *NULL],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = [[[i, i + 1, 1000]] for i in range(50)]
    assert read_outputs(tmp_path / "out_text_document") == spec_files(docs, "uint16")
    progress = [line for line in done.stderr.splitlines() if line.startswith("Processed")]
    assert [line.split(" (")[0] for line in progress] == [
        "Processed 20 documents",
        "Processed 40 documents",
    ]
    assert f"Opening {src}" in done.stdout


def test_progress_lines_are_the_originals_when_stderr_is_not_a_terminal(tmp_path, cli):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": str(i)}) + "\n" for i in range(5)))
    run = cli("--input", src, "--output-prefix", tmp_path / "out", "--log-interval", "2", *NULL)
    assert run.code == 0, run.err
    number = r"\d+(\.\d+)?(e[-+]?\d+)?"
    line = re.compile(rf"^Processed (\d+) documents \({number} docs/s, {number} MB/s\)\.$")
    counts = [int(m.group(1)) for m in map(line.match, run.err.splitlines()) if m]
    assert counts == [2, 4]
    assert re.search(r"^Done: 5 documents, ", run.err, re.M)


def test_help_lists_the_originals_flags():
    done = subprocess.run(
        [sys.executable, "apps/preprocess-data", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0
    for flag in ("--input", "--json-keys", "--split-sentences", "--keep-newlines", "--append-eod",
                 "--lang", "--output-prefix", "--workers", "--partitions", "--log-interval",
                 "--keep-sequential-samples", "--tokenizer-type", "--vocab-file", "--merge-file",
                 "--tokenizer-model", "--vocab-size", "--vocab-extra-ids", "--tiktoken-pattern",
                 "--skip-bad-lines"):  # fmt: skip
        assert flag in done.stdout, flag


def test_progress_bar_on_a_terminal_shows_mb_per_s_and_docs_per_s():
    import io

    from gpt_preprocess_data_app.progress import Progress

    stream = io.StringIO()
    progress = Progress(log_interval=1, total_bytes=3 * 2**20, stream=stream, bar=True)
    progress.start()
    progress.update(10, 2**20)
    progress.update(20, 2 * 2**20)
    summary = progress.close()
    shown = stream.getvalue().rsplit("\r", 1)[-1]  # the bar's last state
    assert re.search(r"3\.00M/3\.00M \[.*B/s, 30 docs, \d+ docs/s\]", shown), shown
    assert "Processed" not in stream.getvalue()  # the plain lines are for non-terminals
    assert summary.startswith("Done: 30 documents, 3.00 MB in ")
