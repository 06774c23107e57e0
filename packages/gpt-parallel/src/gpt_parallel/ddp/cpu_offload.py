"""Optimizer CPU offload (``--optimizer-cpu-offload``): part of the distributed optimizer on the CPU.

Why: the fp32 main params and the Adam moments are 12 bytes per parameter (16 with a bf16
model's fp32 copy counted), the largest share of a model's memory; with the distributed
optimizer each rank holds 1/dp of them, and offloading moves a fraction of that share to host
memory and runs its update on the CPU. What the original's ``HybridDeviceOptimizer`` does, per
distributed-optimizer piece:

- which pieces: walking the pieces in the original's order (parameter groups in order; in each,
  the pieces of fp32 params, then those of bf16/fp16 params, each in buffer order), a piece is
  offloaded while the elements offloaded so far are below ``fraction`` x all elements (so the
  last one taken may cross the line, and a fraction above 0 always takes at least one);
- an offloaded piece's fp32 main param (and so its optimizer state, which torch creates beside
  the param) lives on ``torch.device("cpu")``, a copy even for an fp32 model; each step its
  reduced, unscaled and clipped gradient is copied there (D2H), the inner optimizer updates it
  there (torch's optimizers group tensors by device, so one optimizer steps both sides), and the
  result is copied back into the model's param on its device (H2D) before the all-gather;
- ``pin_cpu_grads`` / ``pin_cpu_params``: page-locked host buffers for the gradients and main
  params, so the copies can run asynchronously; only where the model is on CUDA (pinning needs
  it). In the original (core_v0.14.0) ``pin_cpu_params`` is stored but never read (the host
  params are always pinned); here it is honoured;
- ``overlap_d2h_h2d``: issue the copies asynchronously (one wait before the CPU step reads the
  gradients). The original also splits the CPU step into one optimizer per parameter on its own
  streams; the arithmetic is the same either way.

On a CPU-only machine the "device" is the CPU too, so the same code path (separate CPU copies,
copies in and out) runs and is tested for equality with the plain distributed optimizer.
``--use-torch-optimizer-for-cpu-offload`` needs no field: the inner optimizer here is always
torch's, and in the original the choice it sets is overwritten for both adam and sgd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gpt_parallel.config import TrainingParallelConfig

HOST = torch.device("cpu")


@dataclass(frozen=True, kw_only=True)
class CpuOffloadConfig:
    """Which share of the distributed optimizer lives on the CPU, and how copies are made."""

    fraction: float = 1.0
    """Share of the pieces' elements offloaded (``--optimizer-offload-fraction``)."""
    pin_cpu_grads: bool = True
    """Page-locked host gradient buffers (off with ``--no-pin-cpu-grads``)."""
    pin_cpu_params: bool = True
    """Page-locked host main params (off with ``--no-pin-cpu-params``)."""
    overlap_d2h_h2d: bool = False
    """Asynchronous copies to and from the host (``--overlap-cpu-optimizer-d2h-h2d``)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(
                f"--optimizer-offload-fraction must be between 0 and 1, got {self.fraction}"
            )

    @classmethod
    def from_flags(cls, training: TrainingParallelConfig) -> CpuOffloadConfig | None:
        """The offload settings from gpt-parallel's training flags; None without the flag."""
        if not training.optimizer_cpu_offload:
            return None
        return cls(
            fraction=training.optimizer_offload_fraction,
            pin_cpu_grads=training.pin_cpu_grads,
            pin_cpu_params=training.pin_cpu_params,
            overlap_d2h_h2d=training.overlap_cpu_optimizer_d2h_h2d,
        )


def select_offloaded(numels: Sequence[int], fraction: float) -> list[bool]:
    """Which of the pieces (``numels`` in the original's order) go to the CPU."""
    threshold = sum(numels) * fraction
    offloaded, taken = [], 0
    for numel in numels:
        take = taken < threshold
        offloaded.append(take)
        taken += numel if take else 0
    return offloaded


class HostCopies:
    """The host-side tensors of the offloaded pieces and the copies between the two sides."""

    def __init__(self, config: CpuOffloadConfig) -> None:
        self.config = config
        self._grad_buffers: dict[int, torch.Tensor] = {}

    def _pinned(self, source: torch.Tensor, wanted: bool) -> bool:
        return wanted and source.device.type == "cuda"

    def main_param(self, model_piece: torch.Tensor) -> torch.Tensor:
        """A new fp32 host tensor holding ``model_piece`` (a slice of the model's param)."""
        pin = self._pinned(model_piece, self.config.pin_cpu_params)
        main = torch.empty(model_piece.shape, dtype=torch.float32, device=HOST, pin_memory=pin)
        main.copy_(model_piece)
        return main

    def load_grads(self, mains: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        """Give each host main param its gradient (D2H), reusing one host buffer per piece."""
        non_blocking = self.config.overlap_d2h_h2d
        crossed = False
        for index, (main, grad) in enumerate(zip(mains, grads, strict=True)):
            buffer = self._grad_buffers.get(index)
            if buffer is None:
                pin = self._pinned(grad, self.config.pin_cpu_grads)
                buffer = torch.empty(main.shape, dtype=torch.float32, device=HOST, pin_memory=pin)
                self._grad_buffers[index] = buffer
            buffer.copy_(grad, non_blocking=non_blocking)
            crossed = crossed or grad.device.type == "cuda"
            main.grad = buffer
        if non_blocking and crossed:
            torch.cuda.synchronize()  # the CPU step reads the buffers next

    def store_params(
        self, mains: Sequence[torch.Tensor], model_pieces: Sequence[torch.Tensor]
    ) -> None:
        """Copy the updated host main params into the model's params (H2D)."""
        for main, piece in zip(mains, model_pieces, strict=True):
            non_blocking = self.config.overlap_d2h_h2d and main.is_pinned()
            piece.copy_(main, non_blocking=non_blocking)
