"""How microbatch losses become the loss to backpropagate and the loss to report.

Each microbatch reports ``[sum(loss * mask), num_tokens]`` per key (e.g. ``lm loss``).

- Backward: without ``--calculate-per-token-loss`` each microbatch's loss is
  ``sum / num_tokens / num_microbatches`` (its own token count, so with context parallelism
  the later average over DP x CP of the gradients gives the full-sequence mean); with it the
  raw sum is used and the gradients are divided by the global token count afterwards.
- Report: the pairs are summed over microbatches, all-reduced over the DP x CP group, and the
  reported value is ``sum / num_tokens``, a token-weighted mean over the global batch. A
  one-element report (the legacy form) is averaged over microbatches instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from gpt_parallel.collectives import ProcessGroup, all_reduce_


def loss_for_backward(
    loss_sum: torch.Tensor,
    num_tokens: torch.Tensor | int,
    num_microbatches: int,
    calculate_per_token_loss: bool = False,
) -> torch.Tensor:
    """The microbatch loss to call backward on (before loss scaling).

    A microbatch whose tokens are all masked divides by 1 rather than 0.
    """
    if calculate_per_token_loss:
        return loss_sum
    tokens = torch.as_tensor(num_tokens, device=loss_sum.device).clamp(min=1)
    return loss_sum / tokens / num_microbatches


def reduce_loss_reports(
    reports: Sequence[Mapping[str, torch.Tensor]], dp_cp_group: ProcessGroup | None
) -> dict[str, torch.Tensor]:
    """One value per key for this iteration from every microbatch's report (see module doc)."""
    if not reports:
        return {}
    reduced: dict[str, torch.Tensor] = {}
    for key in reports[0]:
        values = [torch.as_tensor(report[key]).reshape(-1).float() for report in reports]
        if values[0].numel() == 2:
            total = torch.stack(values).sum(dim=0)
            all_reduce_(total, dp_cp_group, "sum")
            reduced[key] = total[0] / total[1]
        elif values[0].numel() == 1:
            reduced[key] = torch.cat(values).mean()
        else:
            raise ValueError(
                f"loss report {key!r} must hold [sum, num_tokens] or one value, "
                f"got {values[0].numel()} values"
            )
    return reduced
