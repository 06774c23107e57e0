"""The original's result validation with reruns disabled: NaN/Inf losses and gradients, spiky
losses and unexpectedly large gradients stop the run with the original's message.

`--check-for-nan-in-loss-and-grad` (on by default) checks each micro-batch's loss sum and the
local gradient norm; `--check-for-spiky-loss` and `--check-for-large-grads` compare a value with
10x the largest of its first 100 observations (the original's `is_unexpectedly_large`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

SPIKE_FACTOR = 10.0
SAMPLES_FOR_MAX = 100


class UnexpectedResult(RuntimeError):
    """A checked value was rejected; the message is the original's one line."""


@dataclass
class ResultChecks:
    check_nan: bool
    check_spiky_loss: bool
    check_large_grads: bool
    rank: int = 0
    device: str = "cpu"
    iteration: int = 0
    _counts: dict[str, int] = field(default_factory=dict)
    _max: dict[str, float] = field(default_factory=dict)

    def _fail(self, value: float, message: str) -> None:
        node = os.uname()[1]
        raise UnexpectedResult(
            f"Rank {self.rank}, node {node}, device {self.device}, iteration {self.iteration}: "
            f"Unexpected result {value} (message='{message}')"
        )

    def is_unexpectedly_large(self, value: float, context: str) -> bool:
        """True once `value` is at least 10x the max of the first 100 finite values seen."""
        value = math.fabs(value)
        if not math.isfinite(value):
            return False  # NaN and Inf are checked separately
        seen = self._counts.get(context, 0)
        if seen < SAMPLES_FOR_MAX:
            self._counts[context] = seen + 1
            self._max[context] = max(self._max.get(context, 0.0), value)
            return False
        return value >= self._max[context] * SPIKE_FACTOR

    def loss(self, loss_sum: float) -> None:
        """A micro-batch's summed loss, as pretrain_gpt's loss function validates it."""
        if self.check_nan:
            if math.isnan(loss_sum):
                self._fail(loss_sum, "found NaN in local forward loss calculation")
            if math.isinf(loss_sum):
                self._fail(loss_sum, "found Inf in local forward loss calculation")
        if self.check_spiky_loss and self.is_unexpectedly_large(loss_sum, "loss"):
            self._fail(loss_sum, "Spiky loss")

    @property
    def checks_grads(self) -> bool:
        return self.check_nan or self.check_large_grads

    def grads(self, grad_norm: float) -> None:
        """The local gradient norm after the backward pass, before any reduction."""
        where = "in backward pass before data-parallel communication collective"
        if self.check_nan:
            if math.isnan(grad_norm):
                self._fail(grad_norm, f"found NaN in local grad norm for bucket #0 {where}")
            if math.isinf(grad_norm):
                self._fail(grad_norm, f"found Inf in local grad norm for bucket #0 {where}")
        if self.check_large_grads and self.is_unexpectedly_large(grad_norm, "grads"):
            self._fail(grad_norm, f"found unexpected large grads in bucket #0 {where}")
