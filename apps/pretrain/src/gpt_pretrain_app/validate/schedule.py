"""Training length and the LR / weight-decay schedules: iterations or samples, never both."""

from __future__ import annotations

from .context import Resolution, require


def resolve_training_length(r: Resolution) -> None:
    a = r.args
    if a.train_iters is not None:
        require(a.train_samples is None, "--train-iters and --train-samples are mutually exclusive")
        require(
            a.lr_decay_samples is None,
            "--lr-decay-samples needs --train-samples, not --train-iters",
        )
        require(
            a.lr_warmup_samples == 0, "--lr-warmup-samples needs --train-samples, not --train-iters"
        )
        require(
            a.lr_wsd_decay_samples is None,
            "--lr-wsd-decay-samples needs --train-samples, not --train-iters",
        )
        require(a.train_iters >= 0, f"--train-iters must not be negative, got {a.train_iters}")
    if a.train_samples is not None:
        require(
            a.lr_decay_iters is None, "--lr-decay-iters needs --train-iters, not --train-samples"
        )
        require(
            a.lr_warmup_iters == 0, "--lr-warmup-iters needs --train-iters, not --train-samples"
        )
        require(
            a.lr_wsd_decay_iters is None,
            "--lr-wsd-decay-iters needs --train-iters, not --train-samples",
        )
        require(
            a.train_samples >= 0, f"--train-samples must not be negative, got {a.train_samples}"
        )
    if a.lr_warmup_fraction is not None:
        require(
            a.lr_warmup_iters == 0 and a.lr_warmup_samples == 0,
            "--lr-warmup-fraction and --lr-warmup-iters/--lr-warmup-samples are mutually exclusive",
        )
        require(
            0.0 <= a.lr_warmup_fraction <= 1.0,
            f"--lr-warmup-fraction must be in [0, 1], got {a.lr_warmup_fraction}",
        )
    a.consumed_train_samples = 0
    a.skipped_train_samples = 0
    a.consumed_valid_samples = 0
    a.variable_seq_lengths = False


def check_learning_rate(r: Resolution) -> None:
    a = r.args
    require(a.min_lr >= 0.0, f"--min-lr must not be negative, got {a.min_lr}")
    if a.lr is not None:
        require(a.min_lr <= a.lr, f"--min-lr ({a.min_lr}) must not exceed --lr ({a.lr})")
        require(
            a.lr_warmup_init <= a.lr,
            f"--lr-warmup-init ({a.lr_warmup_init}) must not exceed --lr ({a.lr})",
        )
    if a.decoupled_lr is not None and a.decoupled_min_lr is not None:
        require(
            a.decoupled_min_lr <= a.decoupled_lr,
            f"--decoupled-min-lr ({a.decoupled_min_lr}) must not exceed --decoupled-lr ({a.decoupled_lr})",
        )
    if a.lr_decay_style == "WSD":
        require(
            a.lr_wsd_decay_iters is not None or a.lr_wsd_decay_samples is not None,
            "--lr-decay-style WSD needs --lr-wsd-decay-iters or --lr-wsd-decay-samples",
        )
    require(
        not (a.override_opt_param_scheduler and a.use_checkpoint_opt_param_scheduler),
        "--override-opt_param-scheduler and --use-checkpoint-opt_param-scheduler are mutually exclusive",
    )


def check_weight_decay(r: Resolution) -> None:
    a = r.args
    if a.weight_decay_incr_style == "constant":
        require(
            a.start_weight_decay is None and a.end_weight_decay is None,
            "--start-weight-decay/--end-weight-decay need --weight-decay-incr-style linear or cosine",
        )
        a.start_weight_decay = a.weight_decay
        a.end_weight_decay = a.weight_decay
    else:
        require(
            a.start_weight_decay is not None and a.end_weight_decay is not None,
            f"--weight-decay-incr-style {a.weight_decay_incr_style} needs --start-weight-decay and "
            "--end-weight-decay",
        )
        require(a.start_weight_decay >= 0.0, "--start-weight-decay must not be negative")
        require(
            a.end_weight_decay >= a.start_weight_decay,
            "--end-weight-decay must not be below --start-weight-decay",
        )
