"""How many microbatches make the current global batch, with optional batch-size rampup.

``--rampup-batch-size START INCR SAMPLES`` grows the global batch from START to
``--global-batch-size`` in steps of INCR, spread evenly over the first SAMPLES samples. The
training loop calls ``update(consumed_samples)`` before every iteration and runs ``get()``
microbatches of ``--micro-batch-size`` on each data-parallel rank. With
``--decrease-batch-size-if-needed`` a global batch that does not divide by ``mbs * dp`` is
rounded down (the "running" batch size) instead of failing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _round_down(batch_size: int, divisor: int) -> int:
    return (batch_size // divisor) * divisor


class NumMicroBatchesCalculator:
    """Common state: the current (and running) global batch size and its microbatch count."""

    def __init__(self, micro_batch_size: int, data_parallel_size: int) -> None:
        if micro_batch_size < 1:
            raise ValueError(f"--micro-batch-size must be positive, got {micro_batch_size}")
        if data_parallel_size < 1:
            raise ValueError(f"data-parallel size must be positive, got {data_parallel_size}")
        self.micro_batch_size = micro_batch_size
        self.data_parallel_size = data_parallel_size
        self.micro_batch_times_data_parallel_size = micro_batch_size * data_parallel_size
        self.num_micro_batches = 0
        self.current_global_batch_size = 0
        self.current_running_global_batch_size = 0
        self.messages: list[str] = []

    def get(self) -> int:
        """Microbatches per iteration on each data-parallel rank."""
        return self.num_micro_batches

    def get_current_global_batch_size(self) -> int:
        """The schedule's global batch size (before any rounding down)."""
        return self.current_global_batch_size

    def get_current_running_global_batch_size(self) -> int:
        """The global batch size actually run (rounded down with --decrease-batch-size-if-needed)."""
        return self.current_running_global_batch_size

    def update(self, consumed_samples: int, consistency_check: bool = True) -> None:
        """Recompute for ``consumed_samples`` samples seen so far."""
        raise NotImplementedError


class ConstantNumMicroBatchesCalculator(NumMicroBatchesCalculator):
    """A fixed global batch: ``gbs // (mbs * dp)`` microbatches."""

    def __init__(
        self,
        global_batch_size: int,
        micro_batch_size: int,
        data_parallel_size: int,
        decrease_batch_size_if_needed: bool = False,
    ) -> None:
        super().__init__(micro_batch_size, data_parallel_size)
        divisor = self.micro_batch_times_data_parallel_size
        if decrease_batch_size_if_needed:
            running = _round_down(global_batch_size, divisor)
            self.messages.append(
                f"decreasing batch size from {global_batch_size} to {running}to keep divisiblity "
                f"by micro_batch_size={micro_batch_size} * data_parallel_size={data_parallel_size}"
            )
        else:
            if global_batch_size % divisor:
                raise ValueError(
                    f"global batch size ({global_batch_size}) is not divisible by micro batch size "
                    f"({micro_batch_size}) times data parallel size ({data_parallel_size})"
                )
            running = global_batch_size
        self.num_micro_batches = running // divisor
        if self.num_micro_batches < 1:
            raise ValueError(
                f"number of microbatches should be at least 1, got {self.num_micro_batches} "
                f"(global batch size {global_batch_size}, micro batch size {micro_batch_size}, "
                f"data parallel size {data_parallel_size})"
            )
        self.current_global_batch_size = global_batch_size
        self.current_running_global_batch_size = running
        self.messages.append(f"setting number of microbatches to constant {self.num_micro_batches}")

    def update(self, consumed_samples: int, consistency_check: bool = True) -> None:
        """The batch never changes, so there is nothing to recompute."""
        return None


class RampupBatchsizeNumMicroBatchesCalculator(NumMicroBatchesCalculator):
    """Global batch growing from ``start`` by ``increment`` over ``rampup_samples`` samples."""

    def __init__(
        self,
        global_batch_size: int,
        micro_batch_size: int,
        data_parallel_size: int,
        decrease_batch_size_if_needed: bool,
        start_global_batch_size: int,
        batch_size_increment: int,
        rampup_samples: int,
    ) -> None:
        super().__init__(micro_batch_size, data_parallel_size)
        if global_batch_size <= 0:
            raise ValueError(f"global batch size should be positive, got {global_batch_size}")
        if start_global_batch_size <= 0:
            raise ValueError(
                f"--rampup-batch-size start batch size should be positive, got {start_global_batch_size}"
            )
        if batch_size_increment <= 0:
            raise ValueError(
                f"--rampup-batch-size increment should be positive, got {batch_size_increment}"
            )
        if rampup_samples < 0:
            raise ValueError(
                f"--rampup-batch-size ramp-up samples should be non-negative, got {rampup_samples}"
            )
        diff = global_batch_size - start_global_batch_size
        if diff < 0:
            raise ValueError(
                f"--global-batch-size ({global_batch_size}) must be >= the rampup start batch "
                f"size ({start_global_batch_size})"
            )
        if diff % batch_size_increment:
            raise ValueError(
                f"global batch size interval ({diff}) must be divisible by the rampup batch size "
                f"increment ({batch_size_increment})"
            )
        self.global_batch_size = global_batch_size
        self.decrease_batch_size_if_needed = decrease_batch_size_if_needed
        self.start_global_batch_size = start_global_batch_size
        self.batch_size_increment = batch_size_increment
        self.rampup_samples = rampup_samples
        num_increments = diff // batch_size_increment
        # No increments (start == gbs): the batch is constant; avoid the original's 0-division.
        self.rampup_samples_per_increment = (
            rampup_samples / num_increments if num_increments else math.inf
        )
        self.messages.append(
            f"will use batch size rampup starting from global batch size "
            f"{start_global_batch_size} to global batch size {global_batch_size} with batch"
            f"size increments {batch_size_increment} over {rampup_samples} samples."
        )
        self.current_global_batch_size = 0
        self._update(0, consistency_check=False, verbose=True)

    def update(self, consumed_samples: int, consistency_check: bool = True) -> None:
        self._update(consumed_samples, consistency_check, verbose=True)

    def _update(self, consumed_samples: int, consistency_check: bool, verbose: bool) -> None:
        old = self.current_global_batch_size
        if consumed_samples > self.rampup_samples:
            self.current_global_batch_size = self.global_batch_size
        else:
            per_increment = self.rampup_samples_per_increment
            # (0 ramp-up samples: only consumed == 0 gets here; the original divides by zero.)
            steps = int(consumed_samples / per_increment) if per_increment > 0 else 0
            self.current_global_batch_size = (
                self.start_global_batch_size + steps * self.batch_size_increment
            )
        changed = old != self.current_global_batch_size
        if verbose and changed:
            if old == 0:
                self.messages.append(
                    f"setting initial batch size to {self.current_global_batch_size}"
                )
            else:
                self.messages.append(
                    f"ramping up batch size from {old} to {self.current_global_batch_size}"
                )

        divisor = self.micro_batch_times_data_parallel_size
        current = self.current_global_batch_size
        if consistency_check and not self.decrease_batch_size_if_needed and current % divisor:
            raise ValueError(
                f"current global batch size ({current}) is not divisible by micro-batch-size "
                f"({self.micro_batch_size}) times data parallel size ({self.data_parallel_size}); "
                "pass --decrease-batch-size-if-needed to round it down"
            )
        if self.decrease_batch_size_if_needed and current % divisor:
            self.current_running_global_batch_size = _round_down(current, divisor)
            if verbose and changed:
                self.messages.append(
                    f"decreasing batch size from {current} to "
                    f"{self.current_running_global_batch_size} to keep divisiblity by "
                    f"micro_batch_size={self.micro_batch_size} * "
                    f"data_parallel_size={self.data_parallel_size}"
                )
        else:
            self.current_running_global_batch_size = current
        self.num_micro_batches = self.current_running_global_batch_size // divisor


def build_num_microbatches_calculator(
    global_batch_size: int,
    micro_batch_size: int,
    data_parallel_size: int,
    rampup_batch_size: Sequence[int] | None = None,
    decrease_batch_size_if_needed: bool = False,
) -> NumMicroBatchesCalculator:
    """Constant, or rampup when ``rampup_batch_size`` (START INCR SAMPLES) is given."""
    if rampup_batch_size is None:
        return ConstantNumMicroBatchesCalculator(
            global_batch_size, micro_batch_size, data_parallel_size, decrease_batch_size_if_needed
        )
    if len(rampup_batch_size) != 3:
        raise ValueError(
            "expected --rampup-batch-size <start batch size> <batch size increment> "
            f"<ramp-up samples>, got {list(rampup_batch_size)}"
        )
    start, increment, samples = (int(x) for x in rampup_batch_size)
    return RampupBatchsizeNumMicroBatchesCalculator(
        global_batch_size,
        micro_batch_size,
        data_parallel_size,
        decrease_batch_size_if_needed,
        start,
        increment,
        samples,
    )


def train_iters_for_samples(
    train_samples: int,
    global_batch_size: int,
    micro_batch_size: int,
    data_parallel_size: int,
    rampup_batch_size: Sequence[int] | None = None,
    decrease_batch_size_if_needed: bool = False,
) -> int:
    """``--train-iters`` implied by ``--train-samples``, simulating the rampup as the original.

    During the rampup, step with the schedule's global batch while the consumed samples are at
    most the ramp-up samples; then add ``(train_samples - consumed) // gbs`` (a partial last
    batch is dropped).
    """
    if rampup_batch_size is None:
        return train_samples // global_batch_size
    calculator = build_num_microbatches_calculator(
        global_batch_size,
        micro_batch_size,
        data_parallel_size,
        rampup_batch_size,
        decrease_batch_size_if_needed,
    )
    rampup_samples = int(rampup_batch_size[2])
    iterations = consumed = 0
    while consumed <= rampup_samples:
        calculator.update(consumed, consistency_check=False)
        consumed += calculator.get_current_global_batch_size()
        iterations += 1
    return iterations + (train_samples - consumed) // global_batch_size
