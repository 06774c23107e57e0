"""Flags of services GPT pretraining here does not run (straggler detection, one-logger,
in-process restart, fault tolerance, retro, ...): accepted so existing scripts run, and their
status (no effect, needs GPU, not implemented) is reported by `--flag-status`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NEEDS_GPU,
    NO_EFFECT,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class StragglerConfig:
    """The original's "straggler" flags owned here."""

    GROUP: ClassVar[str] = "straggler"

    log_straggler: bool = flag(
        False,
        "--log-straggler",
        action="store_true",
        help="If set, tracks and logs straggler per GPU.",
        status=NOT_IMPLEMENTED,
    )
    disable_straggler_on_startup: bool = flag(
        False,
        "--disable-straggler-on-startup",
        action="store_true",
        help="If set, StragglerDetector is disabled on startup.",
        status=NOT_IMPLEMENTED,
    )
    straggler_ctrlr_port: int = flag(
        65535,
        "--straggler-ctrlr-port",
        type=int,
        help="Port number to toggle StragglerDetector on/off at runtime",
        status=NOT_IMPLEMENTED,
    )
    straggler_minmax_count: int = flag(
        1,
        "--straggler-minmax-count",
        type=int,
        help="Number of ranks to report with high/low estimated throughput",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class WorkloadInspectorConfig:
    """The original's "workload inspector" flags owned here."""

    GROUP: ClassVar[str] = "workload inspector"

    run_workload_inspector_server: bool = flag(
        False,
        "--run-workload-inspector-server",
        action="store_true",
        help="If set, enables workload inspector server for on- demand profiling.",
        status=NEEDS_GPU,
        reason="the NVIDIA workload-inspector service",
    )


@dataclass(frozen=True, kw_only=True)
class RetroConfig:
    """The original's "retro" flags owned here."""

    GROUP: ClassVar[str] = "retro"

    retro_project_dir: str | None = flag(
        None,
        "--retro-project-dir",
        help="Retro project directory, which contains the preprocessed data for pretraining. This directory is built during preprocessing (see tools/retro/README.md), and contains subdirectories for the chunk database and pretraining neighbors.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_add_retriever: bool = flag(
        False,
        "--retro-add-retriever",
        action="store_true",
        help="Add a retriever to the transformer, for use in pretraining a Retro model.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_cyclic_train_iters: int | None = flag(
        None,
        "--retro-cyclic-train-iters",
        type=int,
        help="Set number of training iterations for cyclic Retro training.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_encoder_layers: int = flag(
        2,
        "--retro-encoder-layers",
        type=int,
        help="Number of layers to use for the retrieval encoder.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_encoder_hidden_dropout: float = flag(
        0.1,
        "--retro-encoder-hidden-dropout",
        type=float,
        help="Hidden dropout for retrieval encoder.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_encoder_attention_dropout: float = flag(
        0.1,
        "--retro-encoder-attention-dropout",
        type=float,
        help="Attention dropout for retrieval encoder.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_num_neighbors: int = flag(
        2,
        "--retro-num-neighbors",
        type=int,
        help="Number of neighbors to retrieve during pretraining.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_num_retrieved_chunks: int = flag(
        2,
        "--retro-num-retrieved-chunks",
        type=int,
        help="Number of chunks to retrieve from the retrieval database.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_attention_gate: float = flag(
        1,
        "--retro-attention-gate",
        type=float,
        help="Gated cross attention.",
        status=NO_EFFECT,
        reason="RETRO models only",
    )
    retro_verify_neighbor_count: bool = flag(
        True,
        "--retro-no-verify-neighbor-count",
        action="store_false",
        help="Skip verifying that len(GPT dataset) == len(saved neighbors).",
        status=NO_EFFECT,
        reason="RETRO models only",
    )


@dataclass(frozen=True, kw_only=True)
class ExperimentalConfig:
    """The original's "experimental" flags owned here."""

    GROUP: ClassVar[str] = "experimental"

    enable_experimental: bool = flag(
        False,
        "--enable-experimental",
        action="store_true",
        help="Enable experimental features.",
        status=NOT_IMPLEMENTED,
    )
    yaml_cfg: str | None = flag(
        None,
        "--yaml-cfg",
        help="Config file to add additional arguments",
        status=EFFECTIVE,
        reason="tests/pretrain/test_cli.py",
    )


@dataclass(frozen=True, kw_only=True)
class OneLoggerConfig:
    """The original's "one logger" flags owned here."""

    GROUP: ClassVar[str] = "one logger"

    enable_one_logger: bool = flag(
        True,
        "--no-one-logger",
        action="store_false",
        help="If set, disable using one_logger to track E2E metricsNote that one_logger is an internal tool and not available externally. For installation, please go to https://confluence.nvidia.com/display/MLWFO/Package +Repositoriesfor more details",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    one_logger_project: str = flag(
        "megatron-lm",
        "--one-logger-project",
        help="The one-logger project name. Will ignore if --no-one- logger is set",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    one_logger_run_name: str | None = flag(
        None,
        "--one-logger-run-name",
        help="The one-logger run name displayed. Will ignore if --no-one-logger is set",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    one_logger_async: bool = flag(
        False,
        "--one-logger-async",
        action="store_true",
        help="If set, forces one_logger to use async mode.",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    app_tag_run_name: str | None = flag(
        None,
        "--app-tag-run-name",
        help="Jobs belonging to same training run, suppose to have the same name. It will be used to track progress of a training done over multiple different jobs",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )
    app_tag_run_version: str = flag(
        "0.0.0",
        "--app-tag-run-version",
        help="The version of the training of which current job is part of. It will be used to track the changes in the application side which might change the performance baseline",
        status=NO_EFFECT,
        reason="NVIDIA one-logger telemetry is not part of gpt-stack",
    )


@dataclass(frozen=True, kw_only=True)
class InProcessRestartConfig:
    """The original's "In-process restart" flags owned here."""

    GROUP: ClassVar[str] = "In-process restart"

    inprocess_restart: bool = flag(
        False,
        "--inprocess-restart",
        action="store_true",
        help="Enables in-process restart.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_max_iterations: int | None = flag(
        None,
        "--inprocess-max-iterations",
        type=int,
        help="Maximum number of in-process restart iterations.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_monitor_thread_interval: float = flag(
        1.0,
        "--inprocess-monitor-thread-interval",
        type=float,
        help="Monitoring interval (in seconds) for the monitoring thread.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_monitor_process_interval: float = flag(
        1.0,
        "--inprocess-monitor-process-interval",
        type=float,
        help="Monitoring interval (in seconds) for the monitoring process.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_progress_watchdog_interval: float = flag(
        1.0,
        "--inprocess-progress-watchdog-interval",
        type=float,
        help="Interval (in seconds) for automatic progress watchdog timestamp updates.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_heartbeat_interval: float = flag(
        30,
        "--inprocess-heartbeat-interval",
        type=float,
        help="Monitoring interval (in seconds) for detecting unresponsive ranks.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_soft_timeout: float = flag(
        60,
        "--inprocess-soft-timeout",
        type=float,
        help="Soft progress timeout (in seconds).",
        status=NOT_IMPLEMENTED,
    )
    inprocess_hard_timeout: float = flag(
        90,
        "--inprocess-hard-timeout",
        type=float,
        help="Hard progress timeout (in seconds).",
        status=NOT_IMPLEMENTED,
    )
    inprocess_heartbeat_timeout: float = flag(
        60,
        "--inprocess-heartbeat-timeout",
        type=float,
        help="Timeout (in seconds) for a missing rank detection heartbeat.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_barrier_timeout: float = flag(
        120,
        "--inprocess-barrier-timeout",
        type=float,
        help="Timeout (in seconds) for internal distributed barrier",
        status=NOT_IMPLEMENTED,
    )
    inprocess_completion_timeout: float = flag(
        120,
        "--inprocess-completion-timeout",
        type=float,
        help="Timeout (in seconds) for barrier on completion on all ranks",
        status=NOT_IMPLEMENTED,
    )
    inprocess_last_call_wait: float = flag(
        1,
        "--inprocess-last-call-wait",
        type=float,
        help="Time interval (in seconds) for other ranks to report concurrent terminal failures.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_termination_grace_time: float = flag(
        1,
        "--inprocess-termination-grace-time",
        type=float,
        help="Interval (in seconds) between SIGTERM and SIGKILL issued on hard timeout",
        status=NOT_IMPLEMENTED,
    )
    inprocess_granularity: str = flag(
        "node",
        "--inprocess-granularity",
        choices=("node", "rank"),
        help="Granularity for in-process restart.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_active_world_size: int = flag(
        int(os.getenv("WORLD_SIZE", "1")),
        "--inprocess-active-world-size",
        type=int,
        help="The number of ranks initially executing the workload. The remaining ranks from the allocation are set aside as warm reserve.",
        status=NOT_IMPLEMENTED,
    )
    inprocess_empty_cuda_cache: bool = flag(
        False,
        "--inprocess-empty-cuda-cache",
        action="store_true",
        help="Release all unoccupied cached GPU memory on every in- process restart.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class FtPackageConfig:
    """The original's "ft_package" flags owned here."""

    GROUP: ClassVar[str] = "ft_package"

    enable_ft_package: bool = flag(
        False,
        "--enable-ft-package",
        action="store_true",
        help="If set, Fault Tolerance package is enabled. Note: This feature is for Nvidia internal use only.",
        status=NEEDS_GPU,
        reason="the nvidia-resiliency-ext fault-tolerance launcher",
    )
    calc_ft_timeouts: bool = flag(
        False,
        "--calc-ft-timeouts",
        action="store_true",
        help="If set, FT package will try to automatically compute the timeouts. Note: This feature is for Nvidia internal use only.",
        status=NEEDS_GPU,
        reason="the nvidia-resiliency-ext fault-tolerance launcher",
    )


@dataclass(frozen=True, kw_only=True)
class ConfigLoggerConfig:
    """The original's "config logger" flags owned here."""

    GROUP: ClassVar[str] = "config logger"

    config_logger_dir: str = flag(
        "",
        "--config-logger-dir",
        help="If set, will dump all configs to --config-logger-dir",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class RerunEngineConfig:
    """The original's "rerun engine" flags owned here."""

    GROUP: ClassVar[str] = "rerun engine"

    error_injection_rate: int = flag(
        0,
        "--error-injection-rate",
        type=int,
        help="Rate at which to inject unexpected results, e.g. 1000 means once every 1000 result validations",
        status=NOT_IMPLEMENTED,
    )
    error_injection_type: str = flag(
        "transient_error",
        "--error-injection-type",
        choices=("correct_result", "transient_error", "persistent_error"),
        help="Type of error to inject.",
        status=NOT_IMPLEMENTED,
    )
    rerun_mode: str = flag(
        "validate_results",
        "--rerun-mode",
        choices=("disabled", "validate_results", "report_stats"),
        help="Use re-run engine to validate results (default) or to emit stats on variability of computations due to non- deterministic algorithms.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class MSCConfig:
    """The original's "msc" flags owned here."""

    GROUP: ClassVar[str] = "msc"

    enable_msc: bool = flag(
        True,
        "--disable-msc",
        action="store_false",
        help="Disable the usage of Multi-Storage Client (MSC) in Megatron Core.",
        status=NO_EFFECT,
        reason="gpt-stack reads local paths; the multi-storage client is never used",
    )


@dataclass(frozen=True, kw_only=True)
class KitchenConfig:
    """The original's "kitchen" flags owned here."""

    GROUP: ClassVar[str] = "kitchen"

    kitchen_config_file: str | None = flag(
        None,
        "--kitchen-config-file",
        help="Use the config .yaml file at the specified location to configure kitchen quantization.",
        status=NEEDS_GPU,
        reason="the NVIDIA Kitchen quantization library (CUDA)",
    )
    kitchen_recipe_number: int | None = flag(
        None,
        "--kitchen-recipe-number",
        type=int,
        help="Use a default kitchen recipe for all layers as defined by QAT_PARAMS index",
        status=NEEDS_GPU,
        reason="the NVIDIA Kitchen quantization library (CUDA)",
    )
