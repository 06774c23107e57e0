"""Learning-rate schedule flags owned by gpt-parallel (read by `schedules.build_scheduler`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class LearningRateConfig:
    """The original's "learning rate" flags owned here."""

    GROUP: ClassVar[str] = "learning rate"

    lr: float | None = flag(
        None,
        "--lr",
        type=float,
        help="Initial learning rate. Depending on decay style and initial warmup, the learning rate at each iteration would be different.",
        status=EFFECTIVE,
    )
    lr_decay_style: str = flag(
        "linear",
        "--lr-decay-style",
        choices=("constant", "linear", "cosine", "inverse-square-root", "WSD"),
        help="Learning rate decay function.",
        status=EFFECTIVE,
    )
    lr_wsd_decay_style: str = flag(
        "exponential",
        "--lr-wsd-decay-style",
        choices=("exponential", "linear", "cosine", "minus_sqrt"),
        help="Decay style for the annealing phase of WSD",
        status=EFFECTIVE,
    )
    lr_decay_iters: int | None = flag(
        None,
        "--lr-decay-iters",
        type=int,
        help="number of iterations to decay learning rate over, If None defaults to `--train-iters`",
        status=EFFECTIVE,
    )
    lr_decay_samples: int | None = flag(
        None,
        "--lr-decay-samples",
        type=int,
        help="number of samples to decay learning rate over, If None defaults to `--train-samples`",
        status=EFFECTIVE,
    )
    lr_wsd_decay_samples: int | None = flag(
        None,
        "--lr-wsd-decay-samples",
        type=int,
        help="number of samples for the annealing phase in the wsd schedule",
        status=EFFECTIVE,
    )
    lr_wsd_decay_iters: int | None = flag(
        None,
        "--lr-wsd-decay-iters",
        type=int,
        help="number of iterations for the annealing phase in the wsd schedule",
        status=EFFECTIVE,
    )
    lr_warmup_fraction: float | None = flag(
        None,
        "--lr-warmup-fraction",
        type=float,
        help="fraction of lr-warmup-(iters/samples) to use for warmup (as a float)",
        status=EFFECTIVE,
    )
    lr_warmup_iters: int = flag(
        0,
        "--lr-warmup-iters",
        type=int,
        help="number of iterations to linearly warmup learning rate over.",
        status=EFFECTIVE,
    )
    lr_warmup_samples: int = flag(
        0,
        "--lr-warmup-samples",
        type=int,
        help="number of samples to linearly warmup learning rate over.",
        status=EFFECTIVE,
    )
    lr_warmup_init: float = flag(
        0.0,
        "--lr-warmup-init",
        type=float,
        help="Initial value for learning rate warmup. The scheduler starts warmup from this value.",
        status=EFFECTIVE,
    )
    warmup: int | None = flag(
        None,
        "--warmup",
        type=int,
        help="Old lr warmup argument, do not use. Use one of the-- lr-warmup-* arguments above",
        status=EFFECTIVE,
        deprecated="--lr-warmup-iters",
    )
    min_lr: float = flag(
        0.0,
        "--min-lr",
        type=float,
        help="Minimum value for learning rate. The schedulerclip values below this threshold.",
        status=EFFECTIVE,
    )
    override_opt_param_scheduler: bool = flag(
        False,
        "--override-opt_param-scheduler",
        action="store_true",
        help="Reset the values of the scheduler (learning rate,warmup iterations, minimum learning rate, maximum number of iterations, and decay style from input arguments and ignore values from checkpoints. Notethat all the above values will be reset.",
        status=EFFECTIVE,
    )
    use_checkpoint_opt_param_scheduler: bool = flag(
        False,
        "--use-checkpoint-opt_param-scheduler",
        action="store_true",
        help="Use checkpoint to set the values of the scheduler (learning rate, warmup iterations, minimum learning rate, maximum number of iterations, and decay style from checkpoint and ignore input arguments.",
        status=EFFECTIVE,
    )
    decoupled_lr: float | None = flag(
        None,
        "--decoupled-lr",
        type=float,
        help="Separate learning rate for the input and output layer",
        status=EFFECTIVE,
    )
    decoupled_min_lr: float | None = flag(
        None,
        "--decoupled-min-lr",
        type=float,
        help="Minimum value for learning rate for the input and output layer. The schedulerclip values below this threshold",
        status=EFFECTIVE,
    )
