"""Batch sizes, micro-batches and the batch-size rampup."""

from __future__ import annotations

from .context import Resolution, require


def resolve_batch_sizes(r: Resolution) -> None:
    a = r.args
    require(a.micro_batch_size is not None, "--micro-batch-size is required")
    require(
        a.micro_batch_size > 0, f"--micro-batch-size must be positive, got {a.micro_batch_size}"
    )
    per_step = a.micro_batch_size * a.data_parallel_size
    if a.global_batch_size is None:
        a.global_batch_size = per_step
        r.say(f"setting global batch size to {a.global_batch_size}")
    require(
        a.global_batch_size > 0, f"--global-batch-size must be positive, got {a.global_batch_size}"
    )
    if a.rampup_batch_size is not None:
        require(
            len(a.rampup_batch_size) == 3,
            "--rampup-batch-size takes three values: start batch size, increment, ramp-up samples",
        )
        require(
            a.train_iters is None, "--rampup-batch-size needs --train-samples, not --train-iters"
        )
        start, incr, samples = (int(v) for v in a.rampup_batch_size)
        require(
            start > 0 and incr > 0 and samples >= 0, "--rampup-batch-size values must be positive"
        )
        require(
            (a.global_batch_size - start) % incr == 0,
            f"--global-batch-size ({a.global_batch_size}) minus the rampup start ({start}) must be "
            f"divisible by the rampup increment ({incr})",
        )
        a.num_microbatches = None
    else:
        require(
            a.global_batch_size % per_step == 0,
            f"--global-batch-size ({a.global_batch_size}) must be divisible by --micro-batch-size x "
            f"data-parallel size ({a.micro_batch_size} x {a.data_parallel_size})",
        )
        a.num_microbatches = a.global_batch_size // per_step
        r.say(f"setting number of microbatches to constant {a.num_microbatches}")
