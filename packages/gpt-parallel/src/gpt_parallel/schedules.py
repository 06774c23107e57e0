"""Learning-rate and weight-decay schedules, counted in samples as the original counts them.

``OptimizerParamScheduler`` sets ``lr`` and ``weight_decay`` of every optimizer param group from
``num_steps``, the number of samples consumed. The training loop calls ``step(global_batch)``
after every successful iteration, so the optimizer uses ``lr(n)`` with ``n`` the samples consumed
before the iteration, and the learning rate printed at iteration ``k`` is ``lr(k * gbs)``.
``schedule_steps`` turns the iteration- or sample-based flags into those sample counts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from gpt_parallel.optim_config import OptimizerConfig
from gpt_parallel.schedule_config import LearningRateConfig

logger = logging.getLogger(__name__)

LR_DECAY_STYLES = ("constant", "linear", "cosine", "inverse-square-root", "WSD")
LR_WSD_DECAY_STYLES = ("linear", "cosine", "exponential", "minus_sqrt")
WD_INCR_STYLES = ("constant", "linear", "cosine")


def _check_decay_style(style: str, wsd_decay_steps: int | None, wsd_style: str | None) -> None:
    if style not in LR_DECAY_STYLES:
        raise ValueError(f"--lr-decay-style {style!r} is not one of {', '.join(LR_DECAY_STYLES)}")
    if style == "WSD":
        if wsd_decay_steps is None:
            raise ValueError(
                "--lr-decay-style WSD needs --lr-wsd-decay-iters or --lr-wsd-decay-samples"
            )
        if wsd_style not in LR_WSD_DECAY_STYLES:
            raise ValueError(
                f"--lr-wsd-decay-style {wsd_style!r} is not one of {', '.join(LR_WSD_DECAY_STYLES)}"
            )


def _check_weight_decay(start_wd: float, end_wd: float, incr_style: str) -> None:
    if start_wd < 0.0:
        raise ValueError(f"--start-weight-decay must be >= 0, got {start_wd}")
    if end_wd < start_wd:
        raise ValueError(
            f"--end-weight-decay ({end_wd}) must be >= --start-weight-decay ({start_wd})"
        )
    if incr_style not in WD_INCR_STYLES:
        raise ValueError(
            f"--weight-decay-incr-style {incr_style!r} is not one of {', '.join(WD_INCR_STYLES)}"
        )


class HasParamGroups(Protocol):
    param_groups: list[dict[str, Any]]


class OptimizerParamScheduler:
    """Anneals the learning rate and increments the weight decay of an optimizer's groups.

    A group's own ``max_lr``/``min_lr`` (set for ``--decoupled-lr`` groups) replace the scheduler's;
    the group's lr is then multiplied by its ``lr_mult`` and its weight decay by its ``wd_mult``.
    """

    def __init__(
        self,
        optimizer: HasParamGroups,
        init_lr: float,
        max_lr: float,
        min_lr: float,
        lr_warmup_steps: float,
        lr_decay_steps: int,
        lr_decay_style: str,
        start_wd: float,
        end_wd: float,
        wd_incr_steps: int,
        wd_incr_style: str,
        use_checkpoint_opt_param_scheduler: bool = True,
        override_opt_param_scheduler: bool = False,
        wsd_decay_steps: int | None = None,
        lr_wsd_decay_style: str | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.init_lr = init_lr
        self.max_lr = float(max_lr)
        self.min_lr = min_lr
        if self.min_lr < 0.0:
            raise ValueError(f"--min-lr must be >= 0, got {self.min_lr}")
        if self.max_lr < self.min_lr:
            raise ValueError(f"--lr ({self.max_lr}) must be >= --min-lr ({self.min_lr})")
        if self.init_lr > self.max_lr:
            raise ValueError(f"--lr-warmup-init ({self.init_lr}) must be <= --lr ({self.max_lr})")

        self.lr_warmup_steps = lr_warmup_steps
        self.num_steps = 0
        self.lr_decay_steps = lr_decay_steps
        self.wsd_decay_steps = wsd_decay_steps
        self.lr_wsd_decay_style = lr_wsd_decay_style
        if self.lr_decay_steps <= 0:
            raise ValueError(
                f"the learning-rate decay span must be positive, got {self.lr_decay_steps} samples "
                "(--lr-decay-iters/--lr-decay-samples or --train-iters/--train-samples)"
            )
        if self.lr_warmup_steps >= self.lr_decay_steps:
            raise ValueError(
                f"warmup ({self.lr_warmup_steps} samples) must be shorter than the decay span "
                f"({self.lr_decay_steps} samples): check --lr-warmup-iters/--lr-warmup-samples/"
                "--lr-warmup-fraction against --lr-decay-iters/--train-iters"
            )
        _check_decay_style(lr_decay_style, wsd_decay_steps, lr_wsd_decay_style)
        self.lr_decay_style = lr_decay_style

        _check_weight_decay(start_wd, end_wd, wd_incr_style)
        self.start_wd = start_wd
        self.end_wd = end_wd
        self.wd_incr_steps = wd_incr_steps
        self.wd_incr_style = wd_incr_style

        if override_opt_param_scheduler and use_checkpoint_opt_param_scheduler:
            raise ValueError(
                "--override-opt_param-scheduler and --use-checkpoint-opt_param-scheduler "
                "cannot both be set"
            )
        self.override_opt_param_scheduler = override_opt_param_scheduler
        self.use_checkpoint_opt_param_scheduler = use_checkpoint_opt_param_scheduler

        self.step(0)
        logger.info("> learning rate decay style: %s", self.lr_decay_style)

    # --- the schedule -------------------------------------------------------------------

    def get_wd(self) -> float:
        """Weight decay at ``num_steps`` (before a group's ``wd_mult``)."""
        if self.num_steps > self.wd_incr_steps:
            return self.end_wd
        if self.wd_incr_style == "constant":
            if self.start_wd != self.end_wd:
                raise ValueError(
                    "--weight-decay-incr-style constant needs equal start and end weight decay, "
                    f"got {self.start_wd} and {self.end_wd}"
                )
            return self.end_wd
        ratio = float(self.num_steps) / float(self.wd_incr_steps)
        if self.wd_incr_style == "linear":
            coeff = ratio
        else:  # cosine, rising from start to end
            coeff = 0.5 * (math.cos(math.pi * (1 - ratio)) + 1.0)
        return self.start_wd + coeff * (self.end_wd - self.start_wd)

    def get_lr(self, param_group: dict[str, Any]) -> float:
        """Learning rate at ``num_steps`` for one group (before its ``lr_mult``)."""
        max_lr = param_group.get("max_lr", self.max_lr)
        min_lr = param_group.get("min_lr", self.min_lr)
        n = self.num_steps
        warmup = self.lr_warmup_steps

        if warmup > 0 and n <= warmup:
            return self.init_lr + (max_lr - self.init_lr) * float(n) / float(warmup)
        if self.lr_decay_style == "constant":
            return max_lr
        if n > self.lr_decay_steps:
            return min_lr
        if self.lr_decay_style == "inverse-square-root":
            lr = max_lr * max(warmup, 1) ** 0.5 / max(n, 1) ** 0.5
            return max(min_lr, lr)

        ratio = float(n - warmup) / float(self.lr_decay_steps - warmup)
        if self.lr_decay_style == "linear":
            coeff = 1.0 - ratio
        elif self.lr_decay_style == "cosine":
            coeff = 0.5 * (math.cos(math.pi * ratio) + 1.0)
        else:  # WSD: stable at max_lr, then anneal over the last wsd_decay_steps samples
            anneal_start = self.lr_decay_steps - self.wsd_decay_steps
            if n <= anneal_start:
                coeff = 1.0
            else:
                q = float(n - anneal_start) / float(self.wsd_decay_steps)
                if self.lr_wsd_decay_style == "linear":
                    coeff = 1.0 - q
                elif self.lr_wsd_decay_style == "cosine":
                    coeff = 0.5 * (math.cos(math.pi * q) + 1.0)
                elif self.lr_wsd_decay_style == "exponential":
                    coeff = 2.0 * math.pow(0.5, q) - 1.0
                else:  # minus_sqrt
                    coeff = 1.0 - math.sqrt(q)
        return min_lr + coeff * (max_lr - min_lr)

    def step(self, increment: int) -> None:
        """Advance by ``increment`` samples and write lr and weight decay into every group."""
        self.num_steps += increment
        new_wd = self.get_wd()
        for group in self.optimizer.param_groups:
            group["lr"] = self.get_lr(group) * group.get("lr_mult", 1.0)
            group["weight_decay"] = new_wd * group.get("wd_mult", 1.0)

    # --- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The original's keys, so checkpoints interchange."""
        return {
            "max_lr": self.max_lr,
            "lr_warmup_steps": self.lr_warmup_steps,
            "num_steps": self.num_steps,
            "lr_decay_style": self.lr_decay_style,
            "lr_decay_steps": self.lr_decay_steps,
            "min_lr": self.min_lr,
            "start_wd": self.start_wd,
            "end_wd": self.end_wd,
            "wd_incr_style": self.wd_incr_style,
            "wd_incr_steps": self.wd_incr_steps,
        }

    def _check_and_set(self, current: Any, saved: Any, name: str) -> Any:
        """Override: keep ours. Use-checkpoint: take saved. Neither: they must agree."""
        if self.override_opt_param_scheduler:
            logger.info(" > overriding %s value to %s", name, current)
            return current
        if not self.use_checkpoint_opt_param_scheduler and current != saved:
            raise ValueError(
                f"OptimizerParamScheduler: the value {current} for {name} differs from the "
                f"checkpoint's {saved}; pass --override-opt_param-scheduler to keep the new value "
                "or --use-checkpoint-opt_param-scheduler to take the checkpoint's"
            )
        logger.info(" > using checkpoint value %s for %s", saved, name)
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict, also from the original's older key names."""

        def first(*keys: str) -> Any:
            for key in keys:
                if key in state_dict:
                    return state_dict[key]
            raise KeyError(f"scheduler state dict has none of {keys}")

        self.max_lr = self._check_and_set(self.max_lr, first("start_lr", "max_lr"), "learning rate")
        self.min_lr = self._check_and_set(
            self.min_lr, state_dict["min_lr"], "minimum learning rate"
        )
        self.lr_warmup_steps = self._check_and_set(
            self.lr_warmup_steps,
            first("warmup_iter", "warmup_steps", "lr_warmup_steps"),
            "warmup iterations",
        )
        self.lr_decay_steps = self._check_and_set(
            self.lr_decay_steps,
            first("end_iter", "decay_steps", "lr_decay_steps"),
            "total number of iterations",
        )
        self.lr_decay_style = self._check_and_set(
            self.lr_decay_style, first("decay_style", "lr_decay_style"), "learning rate decay style"
        )
        # As the original: num_steps is added to the constructor's 0, and the groups are updated
        # before the weight-decay fields below are checked.
        self.step(increment=first("num_iters", "num_steps"))
        if "start_wd" in state_dict:
            self.start_wd = self._check_and_set(
                self.start_wd, state_dict["start_wd"], "start weight decay"
            )
            self.end_wd = self._check_and_set(self.end_wd, state_dict["end_wd"], "end weight decay")
            self.wd_incr_steps = self._check_and_set(
                self.wd_incr_steps,
                state_dict["wd_incr_steps"],
                "total number of weight decay iterations",
            )
            self.wd_incr_style = self._check_and_set(
                self.wd_incr_style, state_dict["wd_incr_style"], "weight decay incr style"
            )


@dataclass(frozen=True)
class ScheduleSteps:
    """The scheduler's spans, in samples."""

    lr_warmup_steps: float
    lr_decay_steps: int
    wd_incr_steps: int
    wsd_decay_steps: int | None


def schedule_steps(
    *,
    global_batch_size: int,
    train_iters: int | None = None,
    train_samples: int | None = None,
    lr_decay_iters: int | None = None,
    lr_decay_samples: int | None = None,
    lr_warmup_fraction: float | None = None,
    lr_warmup_iters: int = 0,
    lr_warmup_samples: int = 0,
    lr_wsd_decay_iters: int | None = None,
    lr_wsd_decay_samples: int | None = None,
) -> ScheduleSteps:
    """Sample counts from the iteration-based (``--train-iters``) or sample-based flags.

    Iteration-based: spans are iterations times the (final) global batch size; a warmup fraction
    is a fraction of the decay span and is not rounded.
    """
    if train_iters:
        decay = (lr_decay_iters or train_iters) * global_batch_size
        if lr_warmup_fraction is not None:
            warmup: float = lr_warmup_fraction * decay
        else:
            warmup = lr_warmup_iters * global_batch_size
        wsd = lr_wsd_decay_iters * global_batch_size if lr_wsd_decay_iters is not None else None
        return ScheduleSteps(warmup, decay, train_iters * global_batch_size, wsd)
    if train_samples:
        decay = lr_decay_samples or train_samples
        if lr_warmup_fraction is not None:
            warmup = lr_warmup_fraction * decay
        else:
            warmup = lr_warmup_samples
        return ScheduleSteps(warmup, decay, train_samples, lr_wsd_decay_samples)
    raise ValueError("either --train-iters or --train-samples must be a positive number")


def build_scheduler(
    optimizer: HasParamGroups,
    config: LearningRateConfig,
    weight_decay: OptimizerConfig,
    *,
    global_batch_size: int,
    train_iters: int | None,
    train_samples: int | None = None,
) -> OptimizerParamScheduler:
    """The scheduler the original's ``get_optimizer_param_scheduler`` builds from the flags.

    ``train_iters`` is the resolved one (derived from ``--train-samples`` when only that is
    given). With ``--weight-decay-incr-style constant`` the weight decay is ``--weight-decay``
    throughout; the linear and cosine styles need ``--start/--end-weight-decay``.
    """
    if config.lr is None:
        raise ValueError("--lr is required to build the learning-rate schedule")
    steps = schedule_steps(
        global_batch_size=global_batch_size,
        train_iters=train_iters,
        train_samples=train_samples,
        lr_decay_iters=config.lr_decay_iters,
        lr_decay_samples=config.lr_decay_samples,
        lr_warmup_fraction=config.lr_warmup_fraction,
        lr_warmup_iters=config.lr_warmup_iters,
        lr_warmup_samples=config.lr_warmup_samples,
        lr_wsd_decay_iters=config.lr_wsd_decay_iters,
        lr_wsd_decay_samples=config.lr_wsd_decay_samples,
    )
    wd = weight_decay
    if wd.weight_decay_incr_style == "constant":
        start_wd = end_wd = wd.weight_decay
    else:
        if wd.start_weight_decay is None or wd.end_weight_decay is None:
            raise ValueError(
                f"--weight-decay-incr-style {wd.weight_decay_incr_style} needs "
                "--start-weight-decay and --end-weight-decay"
            )
        start_wd, end_wd = wd.start_weight_decay, wd.end_weight_decay
    return OptimizerParamScheduler(
        optimizer,
        init_lr=config.lr_warmup_init,
        max_lr=config.lr,
        min_lr=config.min_lr,
        lr_warmup_steps=steps.lr_warmup_steps,
        lr_decay_steps=steps.lr_decay_steps,
        lr_decay_style=config.lr_decay_style,
        start_wd=start_wd,
        end_wd=end_wd,
        wd_incr_steps=steps.wd_incr_steps,
        wd_incr_style=wd.weight_decay_incr_style,
        use_checkpoint_opt_param_scheduler=config.use_checkpoint_opt_param_scheduler,
        override_opt_param_scheduler=config.override_opt_param_scheduler,
        wsd_decay_steps=steps.wsd_decay_steps,
        lr_wsd_decay_style=config.lr_wsd_decay_style,
    )
