"""Checks that belong to no larger concern: determinism, logging, evaluation, exits."""

from __future__ import annotations

from .context import Resolution, require


def check_runtime(r: Resolution) -> None:
    a = r.args
    if a.deterministic_mode:
        require(
            not a.use_flash_attn, "--deterministic-mode cannot be combined with --use-flash-attn"
        )
        require(
            not a.cross_entropy_loss_fusion,
            "--deterministic-mode cannot be combined with --cross-entropy-loss-fusion",
        )
    require(a.log_interval > 0, f"--log-interval must be positive, got {a.log_interval}")
    require(a.eval_iters >= 0, f"--eval-iters must not be negative, got {a.eval_iters}")
    require(a.eval_interval is None or a.eval_interval > 0, "--eval-interval must be positive")
    require(
        a.tensorboard_log_interval > 0,
        f"--tensorboard-log-interval must be positive, got {a.tensorboard_log_interval}",
    )
    if a.exit_duration_in_mins is not None:
        require(a.exit_duration_in_mins > 0, "--exit-duration-in-mins must be positive")
    if a.exit_interval is not None:
        require(a.exit_interval > 0, "--exit-interval must be positive")
    if a.manual_gc_interval != 0:
        require(a.manual_gc, "--manual-gc-interval needs --manual-gc")
    require(a.manual_gc_interval >= 0, "--manual-gc-interval must not be negative")
    require(
        a.empty_unused_memory_level in (0, 1, 2),
        f"--empty-unused-memory-level must be 0, 1 or 2, got {a.empty_unused_memory_level}",
    )
    if a.profile:
        require(
            a.profile_step_end > a.profile_step_start,
            "--profile-step-end must be after --profile-step-start",
        )
    if a.wandb_exp_name or a.wandb_save_dir:
        require(bool(a.wandb_project), "--wandb-exp-name/--wandb-save-dir need --wandb-project")
    if (
        a.log_timers_to_tensorboard
        or a.log_memory_to_tensorboard
        or a.log_validation_ppl_to_tensorboard
    ):
        require(
            a.tensorboard_dir is not None,
            "--log-*-to-tensorboard flags need --tensorboard-dir",
        )
    if a.skip_train:
        require(a.eval_iters > 0, "--skip-train needs --eval-iters > 0 (it only evaluates)")
    else:
        require(
            a.train_iters is not None or a.train_samples is not None,
            "--train-iters or --train-samples is required",
        )
