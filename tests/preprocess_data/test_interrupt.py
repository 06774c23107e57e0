"""A stopped run (Ctrl-C, kill) leaves no dataset and no temporary file; publishing is all or none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gpt_preprocess_data_app.writer as writer_module
import numpy as np
import pytest
from gpt_preprocess_data_app.signals import Interrupted, SignalGuard
from gpt_preprocess_data_app.writer import DatasetWriter

NULL = ["--tokenizer-type", "NullTokenizer", "--vocab-size", "1000"]

# Runs the real CLI, but the input stalls after three batches have gone out, once the run has
# written something; the test then stops it with a signal, as a user would.
DRIVER = """
import sys, time, pathlib
import gpt_preprocess_data_app.inputs as inputs
import gpt_preprocess_data_app.main as app

inputs.BLOCK_BYTES = 256
real = app.iter_batches
ready = pathlib.Path(sys.argv[1])

def stalling(*args, **kwargs):
    for i, batch in enumerate(real(*args, **kwargs)):
        yield batch
        if i == 2:
            ready.touch()
            time.sleep(120)

app.iter_batches = stalling
sys.exit(app.main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    ("signum", "workers"),
    [(signal.SIGINT, "1"), (signal.SIGTERM, "1"), (signal.SIGTERM, "2")],
)
def test_signal_mid_run_leaves_no_dataset_and_no_temporary_file(tmp_path, signum, workers):
    work = tmp_path / "work"
    work.mkdir()
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"{i} {i + 1}"}) + "\n" for i in range(500)))
    driver, ready = tmp_path / "driver.py", tmp_path / "ready"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(ready), "--input", str(src), "--output-prefix",
         str(work / "out"), "--workers", workers, *NULL],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), proc.communicate(timeout=30)
        partial = [p.name for p in work.iterdir()]
        assert partial and all(p.endswith(".partial") for p in partial), partial
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == f"interrupted ({name}): no output was written"
    assert list(work.iterdir()) == []


def test_signal_while_publishing_is_held_until_the_outputs_are_complete():
    with SignalGuard() as guard:
        with pytest.raises(Interrupted) as stopped:
            with guard.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run by now, and raised nothing
                finished = True
        assert finished
    assert stopped.value.held and stopped.value.exit_code == 143
    with SignalGuard():
        with pytest.raises(Interrupted) as stopped:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert not stopped.value.held and stopped.value.exit_code == 130


def test_failed_publish_removes_the_outputs_it_had_published(tmp_path, monkeypatch):
    writer = DatasetWriter(str(tmp_path / "out"), ["a", "b"], "document", np.dtype(np.uint16))
    finalize = writer_module.IndexedDatasetBuilder.finalize
    calls = []

    def failing_second(self, idx_path):
        calls.append(idx_path)
        if len(calls) == 2:
            raise OSError("disk full")
        finalize(self, idx_path)

    monkeypatch.setattr(writer_module.IndexedDatasetBuilder, "finalize", failing_second)
    with pytest.raises(OSError, match="disk full"):
        writer.finalize()
    assert [Path(c).name for c in calls] == ["out_a_document.idx", "out_b_document.idx"]
    assert list(tmp_path.iterdir()) == []
