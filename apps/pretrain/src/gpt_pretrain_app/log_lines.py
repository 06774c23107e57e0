"""The original's console lines, character for character (reference §7)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class IntervalStats:
    """What one log interval accumulated: the per-iteration losses and the skip/nan counts."""

    loss_sums: dict[str, float] = field(default_factory=dict)
    advanced_iterations: int = 0
    skipped_iterations: int = 0
    nan_iterations: int = 0

    def add(self, losses: dict[str, float], skipped: bool) -> None:
        if skipped:
            self.skipped_iterations += 1
            if any(not math.isfinite(v) for v in losses.values()):
                self.nan_iterations += 1
            return
        self.advanced_iterations += 1
        for key, value in losses.items():
            self.loss_sums[key] = self.loss_sums.get(key, 0.0) + value

    def reset(self) -> None:
        self.loss_sums.clear()
        self.advanced_iterations = self.skipped_iterations = self.nan_iterations = 0


def training_line(
    *,
    iteration: int,
    train_iters: int,
    consumed_samples: int,
    skipped_samples: int,
    elapsed_ms: float,
    learning_rate: float | None,
    decoupled_learning_rate: float | None,
    global_batch_size: int,
    stats: IntervalStats,
    loss_scale: float,
    grad_norm: float | None,
    num_zeros: int | None,
    params_norm: float | None,
    throughput_tflops: float | None,
    now: datetime | None = None,
) -> str:
    """The per-interval training line the original prints on the last rank."""
    parts = [f" [{timestamp(now)}]", f" iteration {iteration:8d}/{train_iters:8d} |"]
    parts.append(f" consumed samples: {consumed_samples:12d} |")
    if skipped_samples > 0:
        parts.append(f" skipped samples: {skipped_samples:12d} |")
    parts.append(f" elapsed time per iteration (ms): {elapsed_ms:.1f} |")
    if throughput_tflops is not None:
        parts.append(f" throughput per GPU (TFLOP/s/GPU): {throughput_tflops:.1f} |")
    if learning_rate is not None:
        parts.append(f" learning rate: {learning_rate:.6E} |")
    if decoupled_learning_rate is not None:
        parts.append(f" decoupled learning rate: {decoupled_learning_rate:.6E} |")
    parts.append(f" global batch size: {global_batch_size:5d} |")
    iterations = max(1, stats.advanced_iterations)
    for key, total in stats.loss_sums.items():
        average = total / iterations
        if average > 0.0:
            parts.append(f" {key}: {average:.6E} |")
    parts.append(f" loss scale: {loss_scale:.1f} |")
    if grad_norm is not None:
        parts.append(f" grad norm: {grad_norm:.3f} |")
    if num_zeros is not None:
        parts.append(f" num zeros: {num_zeros} |")
    if params_norm is not None:
        parts.append(f" params norm: {params_norm:.3f} |")
    parts.append(f" number of skipped iterations: {stats.skipped_iterations:3d} |")
    parts.append(f" number of nan iterations: {stats.nan_iterations:3d} |")
    return "".join(parts)


def validation_lines(prefix: str, losses: dict[str, float]) -> list[str]:
    """The dashed box around ` validation loss at {prefix} | lm loss value: ... | lm loss PPL: ... | `."""
    text = f" validation loss at {prefix} | "
    for key, value in losses.items():
        text += f"{key} value: {value:.6E} | "
        text += f"{key} PPL: {math.exp(min(20.0, value)):.6E} | "
    rule = "-" * (len(text) + 1)
    return [rule, text, rule]


def memory_line(rank: int, iterations: int, stats: dict[str, float]) -> str:
    """`[Rank r] (after N iterations) memory (MB) | allocated: ... | ...` (CUDA only in the original)."""
    return (
        f"[Rank {rank}] (after {iterations} iterations) memory (MB)"
        f" | allocated: {stats['allocated']} | max allocated: {stats['max_allocated']}"
        f" | reserved: {stats['reserved']} | max reserved: {stats['max_reserved']}"
    )


def datetime_marker(event: str, now: datetime | None = None) -> str:
    return f"[{event}] datetime: {timestamp(now)} "
