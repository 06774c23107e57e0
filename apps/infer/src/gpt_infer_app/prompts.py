"""`--prompts`: generate for the given prompts (strings, or one JSONL file), print one JSON line
per prompt, exit. A file shows a tqdm progress bar on stderr; a bad line stops with `file:line`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from gpt_inference.batches import generate_in_batches
from gpt_inference.request import GenerationError, InferenceResult
from gpt_inference.sampling import SamplingError, SamplingParams
from gpt_pretrain_app.errors import ArgsError

from .config import TextGenerationConfig


def read_prompts(values: list[str]) -> tuple[list[str], bool]:
    """The prompts, and whether they came from a file. One value naming an existing `.jsonl`
    file is read as JSON lines: each a string or an object with a string `prompt`."""
    if len(values) == 1 and values[0].endswith(".jsonl") and Path(values[0]).is_file():
        return _read_jsonl(Path(values[0])), True
    return list(values), False


def _read_jsonl(path: Path) -> list[str]:
    prompts = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ArgsError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if isinstance(item, dict):
                item = item.get("prompt")
            if not isinstance(item, str):
                raise ArgsError(f'{path}:{number}: expected a string or {{"prompt": "..."}}')
            prompts.append(item)
    if not prompts:
        raise ArgsError(f"--prompts {path}: the file holds no prompts")
    return prompts


def sampling_from_flags(launcher: TextGenerationConfig) -> SamplingParams:
    try:
        return SamplingParams(
            temperature=launcher.temperature,
            top_k=launcher.top_k,
            top_p=launcher.top_p,
            return_log_probs=launcher.return_log_probs,
            num_tokens_to_generate=launcher.num_tokens_to_generate,
        )
    except SamplingError as err:
        raise ArgsError(f"--temperature/--top_k/--top_p/--num-tokens-to-generate: {err}") from None


def generate_for_prompts(
    engine: Any,
    launcher: TextGenerationConfig,
    batch_size: int,
    write: bool,
    out: TextIO | None = None,
) -> int:
    """Generate batch by batch; rank `write` prints each result as one JSON line (to `out`,
    stdout by default)."""
    out = sys.stdout if out is None else out
    assert launcher.prompts is not None
    prompts, from_file = read_prompts(launcher.prompts)
    params = sampling_from_flags(launcher)

    def emit(results: list[InferenceResult]) -> None:
        if write:
            for result in results:
                out.write(json.dumps(result.record()) + "\n")
            out.flush()

    try:
        generate_in_batches(engine, prompts, params, batch_size, emit, progress=from_file and write)
    except (GenerationError, SamplingError) as err:
        raise ArgsError(str(err)) from None
    return 0
