"""The pretrain app's own working flags: the training loop, evaluation and logging.

Each field is one flag of the original `pretrain_gpt.py` (the field name is the argparse dest);
tests/pretrain/test_flags.py checks them against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NEEDS_GPU,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class TrainingLoopConfig:
    """The original's "training" flags owned here."""

    GROUP: ClassVar[str] = "training"

    check_for_nan_in_loss_and_grad: bool = flag(
        True,
        "--no-check-for-nan-in-loss-and-grad",
        action="store_false",
        help="Check for NaNs in loss and grad",
        status=EFFECTIVE,
    )
    check_for_spiky_loss: bool = flag(
        False,
        "--check-for-spiky-loss",
        action="store_true",
        help="Check for spiky loss",
        status=EFFECTIVE,
    )
    check_for_large_grads: bool = flag(
        False,
        "--check-for-large-grads",
        action="store_true",
        help="Check for unexpectedly large grads",
        status=EFFECTIVE,
    )
    profile: bool = flag(
        False,
        "--profile",
        action="store_true",
        help="Enable nsys profiling. When using this option, nsys options should be specified in commandline. An example nsys commandline is `nsys profile -s none -t nvtx,cuda -o <path/to/output_file> --force-overwrite true --capture-range=cudaProfilerApi --capture-range- end=stop`.",
        status=NOT_IMPLEMENTED,
    )
    profile_step_start: int = flag(
        10,
        "--profile-step-start",
        type=int,
        help="Global step to start profiling.",
        status=NOT_IMPLEMENTED,
    )
    profile_step_end: int = flag(
        12,
        "--profile-step-end",
        type=int,
        help="Global step to stop profiling.",
        status=NOT_IMPLEMENTED,
    )
    iterations_to_skip: list[int] = flag(
        [],
        "--iterations-to-skip",
        type=int,
        nargs="+",
        help="List of iterations to skip, empty by default.",
        status=NOT_IMPLEMENTED,
    )
    result_rejected_tracker_filename: str | None = flag(
        None,
        "--result-rejected-tracker-filename",
        help="Optional name of file tracking `result_rejected` events.",
        status=NOT_IMPLEMENTED,
    )
    use_pytorch_profiler: bool = flag(
        False,
        "--use-pytorch-profiler",
        action="store_true",
        help="Use the built-in pytorch profiler. Useful if you wish to view profiles in tensorboard.",
        status=NOT_IMPLEMENTED,
    )
    profile_ranks: list[int] = flag(
        [0],
        "--profile-ranks",
        type=int,
        nargs="+",
        help="Global ranks to profile.",
        status=NOT_IMPLEMENTED,
    )
    record_memory_history: bool = flag(
        False,
        "--record-memory-history",
        action="store_true",
        help="Record memory history in last rank.",
        status=NEEDS_GPU,
        reason="the CUDA caching allocator's memory history",
    )
    memory_snapshot_path: str = flag(
        "snapshot.pickle",
        "--memory-snapshot-path",
        help="Specifies where to dump the memory history pickle.",
        status=NEEDS_GPU,
        reason="the CUDA caching allocator's memory history",
    )
    empty_unused_memory_level: int = flag(
        0,
        "--empty-unused-memory-level",
        type=int,
        choices=(0, 1, 2),
        help="Call torch.cuda.empty_cache() each iteration (training and eval), to reduce fragmentation.0=off, 1=moderate, 2=aggressive.",
        status=EFFECTIVE,
    )
    deterministic_mode: bool = flag(
        False,
        "--deterministic-mode",
        action="store_true",
        help="Choose code that has deterministic execution. This usually means slower execution, but is good for debugging and testing.",
        status=EFFECTIVE,
    )
    calculate_per_token_loss: bool = flag(
        False,
        "--calculate-per-token-loss",
        action="store_true",
        help="Scale cross entropy loss by the number of non-padded tokens in the global batch, versus the default behavior of assuming all tokens are non-padded.",
        status=EFFECTIVE,
    )
    train_sync_interval: int | None = flag(
        None,
        "--train-sync-interval",
        type=int,
        help="Training CPU-GPU synchronization interval, to ensure that CPU is not running too far ahead of GPU.",
        status=NOT_IMPLEMENTED,
    )
    train_iters: int | None = flag(
        None,
        "--train-iters",
        type=int,
        help="Total number of iterations to train over all training runs. Note that either train-iters or train-samples should be provided.",
        status=EFFECTIVE,
    )
    train_samples: int | None = flag(
        None,
        "--train-samples",
        type=int,
        help="Total number of samples to train over all training runs. Note that either train-iters or train-samples should be provided.",
        status=EFFECTIVE,
    )
    log_interval: int = flag(
        100,
        "--log-interval",
        type=int,
        help="Report loss and timing interval.",
        status=EFFECTIVE,
    )
    exit_interval: int | None = flag(
        None,
        "--exit-interval",
        type=int,
        help="Exit the program after the iteration is divisible by this value.",
        status=EFFECTIVE,
    )
    exit_duration_in_mins: int | None = flag(
        None,
        "--exit-duration-in-mins",
        type=int,
        help="Exit the program after this many minutes.",
        status=EFFECTIVE,
    )
    exit_signal_handler: bool = flag(
        False,
        "--exit-signal-handler",
        action="store_true",
        help="Dynamically save the checkpoint and shutdown the training if SIGTERM is received",
        status=EFFECTIVE,
    )
    tensorboard_dir: str | None = flag(
        None,
        "--tensorboard-dir",
        help="Write TensorBoard logs to this directory.",
        status=EFFECTIVE,
    )
    manual_gc: bool = flag(
        False,
        "--manual-gc",
        action="store_true",
        help="Disable the threshold-based default garbage collector and trigger the garbage collection manually. Manual garbage collection helps to align the timing of the collection across ranks which mitigates the impact of CPU-associated jitters. When the manual gc is enabled, garbage collection is performed only at the start and the end of the validation routine by default.",
        status=EFFECTIVE,
    )
    manual_gc_interval: int = flag(
        0,
        "--manual-gc-interval",
        type=int,
        help="Training step interval to trigger manual garbage collection. When the value is set to 0, garbage collection is not triggered between training steps.",
        status=EFFECTIVE,
    )
    manual_gc_eval: bool = flag(
        True,
        "--no-manual-gc-eval",
        action="store_false",
        help="When using manual garbage collection, disable garbage collection at the start and the end of each evaluation run.",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    """The original's "validation" flags owned here."""

    GROUP: ClassVar[str] = "validation"

    eval_iters: int = flag(
        100,
        "--eval-iters",
        type=int,
        help="Number of iterations to run for evaluationvalidation/test for.",
        status=EFFECTIVE,
    )
    eval_interval: int = flag(
        1000,
        "--eval-interval",
        type=int,
        help="Interval between running evaluation on validation set.",
        status=EFFECTIVE,
    )
    test_mode: bool = flag(
        False,
        "--test-mode",
        action="store_true",
        help="Run all real-time test alongside the experiment.",
        status=NOT_IMPLEMENTED,
    )
    skip_train: bool = flag(
        False,
        "--skip-train",
        action="store_true",
        help="If set, bypass the training loop, optionally do evaluation for validation/test, and exit.",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """The original's "logging" flags owned here."""

    GROUP: ClassVar[str] = "logging"

    log_params_norm: bool = flag(
        False,
        "--log-params-norm",
        action="store_true",
        help="If set, calculate and log parameters norm.",
        status=EFFECTIVE,
    )
    log_num_zeros_in_grad: bool = flag(
        False,
        "--log-num-zeros-in-grad",
        action="store_true",
        help="If set, calculate and log the number of zeros in gradient.",
        status=EFFECTIVE,
    )
    log_throughput: bool = flag(
        False,
        "--log-throughput",
        action="store_true",
        help="If set, calculate and log throughput per GPU.",
        status=EFFECTIVE,
    )
    log_progress: bool = flag(
        False,
        "--log-progress",
        action="store_true",
        help="If set, log progress (in terms of number of processed tokens and number of floating-point operations) to progress.txt file in checkpoint directory.",
        status=EFFECTIVE,
    )
    timing_log_level: int = flag(
        0,
        "--timing-log-level",
        type=int,
        choices=(0, 1, 2),
        help="Granularity level to measure and report timing. 0: report only iteration time and make sure timing does not introduce extra overhead. 1: report timing for operations that are executed very limited times (basically once) during each iteration (such as gradient all-reduce) 2: report timing for operations that migh be executed numerous times during each iteration. Note that setting the level to 1 or 2 might cause increase in iteration time.",
        status=EFFECTIVE,
    )
    log_energy: bool = flag(
        False,
        "--log-energy",
        action="store_true",
        help="If set, log energy consumption (in Joules)",
        status=NEEDS_GPU,
        reason="NVML energy counters on NVIDIA GPUs",
    )
    barrier_with_L1_time: bool = flag(
        True,
        "--no-barrier-with-level-1-timing",
        action="store_false",
        help="If not set, use barrier with level 1 time measurements. Note that this is up to the user to make sure calling barrier with their timers will not result in hangs. This can happen if for example the user adds a level 1 timer that is not called by all ranks.",
        status=EFFECTIVE,
    )
    timing_log_option: str = flag(
        "minmax",
        "--timing-log-option",
        choices=("max", "minmax", "all"),
        help="Options for logging timing: max: report the max timing across all ranks minmax: report min and max timings across all ranks all: report timings of all ranks.",
        status=EFFECTIVE,
    )
    tensorboard_log_interval: int = flag(
        1,
        "--tensorboard-log-interval",
        type=int,
        help="Report to tensorboard interval.",
        status=EFFECTIVE,
    )
    tensorboard_queue_size: int = flag(
        1000,
        "--tensorboard-queue-size",
        type=int,
        help='Size of the tensorboard queue for pending events and summaries before one of the "add" calls forces a flush to disk.',
        status=EFFECTIVE,
    )
    log_timers_to_tensorboard: bool = flag(
        False,
        "--log-timers-to-tensorboard",
        action="store_true",
        help="If set, write timers to tensorboard.",
        status=EFFECTIVE,
    )
    log_loss_scale_to_tensorboard: bool = flag(
        True,
        "--no-log-loss-scale-to-tensorboard",
        action="store_false",
        help="Disable loss-scale logging to tensorboard.",
        status=EFFECTIVE,
    )
    log_validation_ppl_to_tensorboard: bool = flag(
        False,
        "--log-validation-ppl-to-tensorboard",
        action="store_true",
        help="If set, write validation perplexity to tensorboard.",
        status=EFFECTIVE,
    )
    log_memory_to_tensorboard: bool = flag(
        False,
        "--log-memory-to-tensorboard",
        action="store_true",
        help="Enable memory logging to tensorboard.",
        status=EFFECTIVE,
    )
    log_world_size_to_tensorboard: bool = flag(
        False,
        "--log-world-size-to-tensorboard",
        action="store_true",
        help="Enable world size logging to tensorboard.",
        status=EFFECTIVE,
    )
    wandb_project: str = flag(
        "",
        "--wandb-project",
        help="The wandb project name. Ignore wandb by default.",
        status=EFFECTIVE,
    )
    wandb_exp_name: str = flag(
        "", "--wandb-exp-name", help="The wandb experiment name.", status=EFFECTIVE
    )
    wandb_save_dir: str = flag(
        "",
        "--wandb-save-dir",
        help="Path to save the wandb results locally.",
        status=EFFECTIVE,
    )
    logging_level: int | None = flag(
        None, "--logging-level", type=int, help="Set default logging level", status=EFFECTIVE
    )
