"""The launcher's own flags: the original `tools/run_text_generation_server.py`'s
"text generation" group (same names and defaults), plus `--host`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import EFFECTIVE, flag


@dataclass(frozen=True, kw_only=True)
class TextGenerationConfig:
    """How `infer` generates: the server's address, the sampling defaults, `--prompts`."""

    GROUP: ClassVar[str] = "text generation"

    port: int = flag(
        5000,
        "--port",
        type=int,
        help="port for text generation server to run on",
        status=EFFECTIVE,
        reason="tests/infer/test_server.py",
    )
    host: str = flag(
        "127.0.0.1",
        "--host",
        help="address the server listens on (the original always used 0.0.0.0)",
        status=EFFECTIVE,
        reason="tests/infer/test_server.py",
    )
    temperature: float = flag(
        1.0,
        "--temperature",
        type=float,
        help="Sampling temperature.",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    top_k: int = flag(
        1,
        "--top_k",
        type=int,
        help="Top k sampling.",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    top_p: float = flag(
        0.0,
        "--top_p",
        type=float,
        help="Top p sampling.",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    return_log_probs: bool = flag(
        True,
        "--return-log-probs",
        action="store_true",
        help="Return the log probabilities of the final output tokens (on by default, as in "
        "the original)",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    num_tokens_to_generate: int = flag(
        30,
        "--num-tokens-to-generate",
        type=int,
        help="Number of tokens to generate for each prompt",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    prompts: list[str] | None = flag(
        None,
        "--prompts",
        nargs="+",
        metavar="N",
        help="Prompts to generate for, then exit (no server): strings, or one .jsonl file "
        'whose lines are {"prompt": ...} objects or strings. One JSON line per prompt is '
        "written to stdout.",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
    max_batch_size: int | None = flag(
        None,
        "--max-batch-size",
        type=int,
        help="Deprecated in favor of `--inference-max-requests`",
        status=EFFECTIVE,
        reason="tests/infer/test_cli.py",
    )
