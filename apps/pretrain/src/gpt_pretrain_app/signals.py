"""`--exit-signal-handler`: SIGTERM asks the run to save and stop at the end of the current
iteration, instead of killing it mid-step. Every rank checks every iteration whether any rank was
signalled (one all-reduce of a flag), so all ranks save the same iteration and stop together, as
the original's `DistributedSignalHandler` does."""

from __future__ import annotations

import signal
from types import FrameType

import torch
import torch.distributed as dist
from gpt_parallel.collectives import all_reduce_


class SigtermFlag:
    """While entered, SIGTERM sets a flag instead of ending the process."""

    def __init__(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.sig = sig
        self.received = False
        self._previous = None

    def __enter__(self) -> SigtermFlag:
        self.received = False
        self._previous = signal.getsignal(self.sig)
        signal.signal(self.sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True

    def __exit__(self, *exc: object) -> None:
        signal.signal(self.sig, self._previous)

    def received_anywhere(self, device: torch.device) -> bool:
        """Whether any rank has been signalled (a collective: every rank must call it)."""
        flag = torch.tensor([1.0 if self.received else 0.0], device=device)
        if dist.is_initialized():
            all_reduce_(flag, dist.group.WORLD, "max")
        return bool(flag.item())
