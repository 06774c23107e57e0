"""Generating for a list of prompts batch by batch, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from gpt_inference.request import InferenceResult
from gpt_inference.sampling import SamplingParams


def generate_in_batches(
    engine: Any,
    prompts: Sequence[str],
    params: SamplingParams,
    batch_size: int,
    on_results: Callable[[list[InferenceResult]], None],
    *,
    progress: bool = False,
) -> None:
    """`engine.generate` on `batch_size` prompts at a time; `on_results` hears each batch's
    results in order as soon as they are made (a tqdm bar on stderr counts the prompts)."""
    bar = tqdm(total=len(prompts), desc="prompts", disable=not progress)
    try:
        for first in range(0, len(prompts), batch_size):
            batch = list(prompts[first : first + batch_size])
            on_results(engine.generate(batch, params))
            bar.update(len(batch))
    finally:
        bar.close()
