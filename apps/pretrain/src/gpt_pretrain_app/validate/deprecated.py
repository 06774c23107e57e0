"""Deprecated spellings: each maps to its replacement with one warning, and does nothing else."""

from __future__ import annotations

from .context import Resolution, require


def _move(r: Resolution, old_flag: str, old_dest: str, new_flag: str, new_dest: str, value) -> None:
    a = r.args
    current = getattr(a, new_dest)
    require(
        current is None or current == value or current == _default_of(new_dest),
        f"{old_flag} (deprecated) and {new_flag} disagree: give only {new_flag}",
    )
    setattr(a, new_dest, value)
    setattr(a, old_dest, None)
    r.warn(f"warning: {old_flag} is deprecated, use {new_flag}")


def _default_of(dest: str):
    from ..cli import build_parser

    return build_parser().get_default(dest)


def map_deprecated_flags(r: Resolution) -> None:
    a = r.args
    if a.batch_size is not None:
        _move(
            r, "--batch-size", "batch_size", "--micro-batch-size", "micro_batch_size", a.batch_size
        )
    if a.warmup is not None:
        # An integer: the old spelling of a warmup length in iterations.
        _move(r, "--warmup", "warmup", "--lr-warmup-iters", "lr_warmup_iters", a.warmup)
    if a.model_parallel_size is not None:
        _move(
            r,
            "--model-parallel-size",
            "model_parallel_size",
            "--tensor-model-parallel-size",
            "tensor_model_parallel_size",
            a.model_parallel_size,
        )
    if a.checkpoint_activations:
        require(
            a.recompute_granularity in (None, "full"),
            "--checkpoint-activations (deprecated: full recompute) conflicts with "
            f"--recompute-granularity {a.recompute_granularity}",
        )
        a.recompute_granularity = "full"
        a.recompute_method = a.recompute_method or "uniform"
        a.recompute_num_layers = a.recompute_num_layers or 1
        a.checkpoint_activations = False
        r.warn(
            "warning: --checkpoint-activations is deprecated, use --recompute-granularity full "
            "--recompute-method uniform"
        )
    if a.recompute_activations:
        require(
            a.recompute_granularity in (None, "selective"),
            "--recompute-activations (selective recompute) conflicts with "
            f"--recompute-granularity {a.recompute_granularity}",
        )
        a.recompute_granularity = "selective"
    if a.use_rotary_position_embeddings:
        require(
            a.position_embedding_type in ("learned_absolute", "rope"),
            "--use-rotary-position-embeddings (deprecated) conflicts with "
            f"--position-embedding-type {a.position_embedding_type}",
        )
        a.position_embedding_type = "rope"
        r.warn(
            "warning: --use-rotary-position-embeddings is deprecated, use --position-embedding-type rope"
        )
    if not a.add_position_embedding:
        if a.position_embedding_type == "learned_absolute":
            a.position_embedding_type = "none"
        a.add_position_embedding = True
        r.warn("warning: --no-position-embedding is deprecated, use --position-embedding-type none")
    for flag_name, dest in (
        ("--use-mcore-models", "deprecated_use_mcore_models"),
        ("--no-async-tensor-model-parallel-allreduce", "async_tensor_model_parallel_allreduce"),
    ):
        value = getattr(a, dest)
        if value != _default_of(dest):
            r.warn(f"warning: {flag_name} is deprecated and has no effect")
    if a.fp8_interval != _default_of("fp8_interval"):
        r.warn("warning: --fp8-interval is deprecated and has no effect")
    if a.use_dist_ckpt_deprecated:
        r.warn("warning: --use-dist-ckpt is deprecated and has no effect, use --ckpt-format")
    if a.dist_ckpt_format_deprecated is not None:
        r.warn("warning: --dist-ckpt-format is deprecated and has no effect, use --ckpt-format")
    if a.ckpt_fully_parallel_save_deprecated:
        r.warn(
            "warning: --ckpt-fully-parallel-save is deprecated and has no effect (it is the default)"
        )
