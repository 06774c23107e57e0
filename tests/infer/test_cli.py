"""`infer --prompts`: one JSON line per prompt from strings or a JSONL file; one-line errors."""

from __future__ import annotations

import json

import pytest
from gpt_infer_app.main import main

from tests.conftest import require_shared_dir
from tests.gpt_inference.golden_runs import assert_matches, fixture, fixture_args

GOLDEN = require_shared_dir() / "reference" / "golden"
NULL = fixture(GOLDEN, "gpt-infer-null.json")
GREEDY = next(s for s in NULL["scenarios"] if s["name"] == "greedy")
ARGS = fixture_args(GOLDEN, NULL)


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_prompts_given_as_strings_print_the_originals_greedy_generations(capsys):
    flags = ["--top_k", "1", "--num-tokens-to-generate", "10", "--inference-max-requests", "2"]
    assert main([*ARGS, *flags, "--prompts", *GREEDY["prompts"]]) == 0
    records = _lines(capsys.readouterr().out)
    assert len(records) == 3  # two batches of at most 2 prompts
    for i, (record, expected) in enumerate(zip(records, GREEDY["output"])):
        assert_matches(record, expected, f"prompt {i}")


def test_a_jsonl_file_of_prompts_with_a_progress_bar(tmp_path, capsys):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "5 17 230 4"}\n"99 3"\n')
    flags = ["--top_k", "1", "--num-tokens-to-generate", "3", "--return-log-probs"]
    assert main([*ARGS, *flags, "--prompts", str(path)]) == 0
    captured = capsys.readouterr()
    records = _lines(captured.out)
    assert [r["generated_tokens"] for r in records] == [[31, 220, 543], [24, 171, 200]]
    assert "prompts" in captured.err and "2/2" in captured.err


def test_a_bad_line_in_the_prompt_file_is_one_line_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "prompts.jsonl"
    path.write_text('"5 17"\n{"prompt": 5}\n')
    assert main([*ARGS, "--prompts", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {path}:2: ")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--flash-decode"], "error: --flash-decode needs a GPU"),
        (["--enable-cuda-graph"], "error: --enable-cuda-graph needs a GPU"),
        (["--symmetric-ar-type", "two_shot"], "error: --symmetric-ar-type needs a GPU"),
        (["--nccl-all-reduce-for-prefill"], "error: --nccl-all-reduce-for-prefill needs a GPU"),
        (["--top_k", "2", "--top_p", "0.5"], "error: --temperature/--top_k/--top_p"),
        (["--num-tokens-to-generate", "200"], "error: tokens_to_generate 200"),
        (["--port", "x"], "error: argument --port: invalid int value"),
        (["--max-tokens-to-oom", "20"], "error: tokens_to_generate 30: 1 prompts x 32 tokens"),
        (["--inference-dynamic-batching-num-cuda-graphs", "4"], "error: --inference-dynamic"),
    ],
)
def test_what_cannot_run_stops_with_one_line(flags, message, capsys):
    if not message.startswith("error: argument") and "GPU" in message:
        import torch

        if torch.cuda.is_available():
            pytest.skip("the flag is refused on CPU only")
    assert main([*ARGS, *flags, "--prompts", "5 17"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(message), err
