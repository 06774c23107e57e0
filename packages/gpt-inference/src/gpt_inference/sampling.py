"""Sampling as the original's `TextGenerationController.sample_from_logits` does it.

Greedy (argmax) when `top_k == 1`; otherwise the logits are divided by the temperature, masked
to the top-k or to the top-p nucleus, softmaxed and drawn with `torch.multinomial`. The order
of these operations and the draw (one `multinomial` over every row of the batch, prompts still
in prefill included) are the original's, so a seeded CPU generator gives the original's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class SamplingError(ValueError):
    """Sampling parameters the original refuses (one line naming the parameter)."""


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """The original's `SamplingParams` (same names and defaults)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    return_log_probs: bool = False
    return_segments: bool = False
    num_tokens_to_generate: int = 30
    top_n_logprobs: int = 0
    return_prompt_top_n_logprobs: bool = False

    def __post_init__(self) -> None:
        if self.top_k > 0 and self.top_p > 0.0:
            raise SamplingError("top_k and top_p: cannot have both greater than zero")
        if self.top_p > 1.0:
            raise SamplingError(f"top_p {self.top_p}: must be in (0, 1]")
        if self.temperature <= 0.0:
            raise SamplingError(f"temperature {self.temperature}: must be positive")
        if self.num_tokens_to_generate < 0:
            raise SamplingError("num_tokens_to_generate: must be >= 0")
        if self.top_n_logprobs < 0:
            raise SamplingError("top_n_logprobs: must be >= 0")

    @property
    def greedy(self) -> bool:
        return self.top_k == 1


def mask_top_k(logits: torch.Tensor, top_k: int) -> None:
    """Set every logit below the k-th largest of its row to -inf (in place)."""
    threshold = torch.topk(logits, top_k)[0][..., -1, None]
    logits.masked_fill_(logits < threshold, float("-inf"))


def mask_top_p(logits: torch.Tensor, top_p: float) -> None:
    """Keep the smallest set of tokens whose probability reaches `top_p` (in place).

    As the original: the cumulative-probability filter is shifted right by one, so the token
    that crosses `top_p` stays, and the most likely token always stays."""
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative > top_p
    drop[:, 1:] = drop[:, :-1].clone()
    drop[..., 0] = False
    drop = drop.scatter(1, sorted_indices, drop)
    logits.masked_fill_(drop, float("-inf"))


def sample(
    last_token_logits: torch.Tensor,
    params: SamplingParams,
    vocab_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """[b, V] logits -> [b] token ids. `generator` None draws from torch's default generator
    (what the original's `torch.random.manual_seed` seeds)."""
    if params.greedy:
        return torch.argmax(last_token_logits, dim=-1)
    logits = last_token_logits.clone()
    if params.temperature != 1.0:
        logits.div_(params.temperature)
    if params.top_k > 1:
        if params.top_k > logits.size(1) or (vocab_size and params.top_k >= vocab_size):
            raise SamplingError(f"top_k {params.top_k}: larger than the vocabulary")
        mask_top_k(logits, params.top_k)
    elif params.top_p > 0.0:
        mask_top_p(logits, params.top_p)
    probabilities = logits.softmax(dim=-1)
    samples = torch.multinomial(probabilities, num_samples=1, generator=generator).view(-1)
    if vocab_size:
        samples = torch.clamp(samples, min=0, max=vocab_size - 1)
    return samples


def top_n_log_probs(logits: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log_softmax over the last dim, then its n largest values and their token ids."""
    log_probs = torch.log_softmax(logits, dim=-1).to(torch.float32)
    top = torch.topk(log_probs, k=n)
    return top.values, top.indices
