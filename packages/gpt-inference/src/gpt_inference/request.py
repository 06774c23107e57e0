"""What a generation returns for one prompt, and when a prompt stops generating."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


class GenerationError(ValueError):
    """A request the engine cannot run (too long, bad prompt, ...): one line naming the cause.

    `field` names the request parameter at fault, for the server's 4xx answer."""

    def __init__(self, message: str, field: str = "prompts") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class StopRule:
    """When a prompt stops generating.

    `termination_ids`: generation ends *before* such a token (it is not part of the output), as
    the original ends at end-of-document. `end_after`: called with the generated ids so far;
    True ends generation *after* the latest token (kept), e.g. at the end of a line."""

    termination_ids: frozenset[int]
    end_after: Callable[[Sequence[int]], bool] | None = None


@dataclass
class InferenceResult:
    """One prompt's output, with the original's `InferenceRequest` field names."""

    prompt: str
    prompt_tokens: list[int]
    generated_tokens: list[int]
    generated_length: int
    generated_text: str
    text: str
    prompt_log_probs: list[float] | None = None
    generated_log_probs: list[float] | None = None
    prompt_top_n_logprobs: list[dict[str, float]] | None = None
    generated_top_n_logprobs: list[dict[str, float]] | None = None
    segments: list[str] | None = None
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        """The fixture/CLI record: every field that was produced."""
        out = {
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "generated_length": self.generated_length,
            "generated_text": self.generated_text,
            "text": self.text,
        }
        for name in (
            "prompt_log_probs",
            "generated_log_probs",
            "prompt_top_n_logprobs",
            "generated_top_n_logprobs",
            "segments",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out
