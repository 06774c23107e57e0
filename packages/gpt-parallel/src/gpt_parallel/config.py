"""Flags owned by gpt-parallel: batch sizes and training-side parallel options, seeds, RNG.

The optimizer, schedule, precision and layout flags live beside the code that reads them
(`optim_config`, `schedule_config`, `precision_config`, `layout_config`) and are re-exported
here, so `gpt_parallel.config` names every gpt-parallel flag class. Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NEEDS_GPU,
    NO_EFFECT,
    NOT_IMPLEMENTED,
    flag,
)

from gpt_parallel.layout_config import DistributedConfig, ExpertParallelConfig
from gpt_parallel.optim_config import OptimizerConfig, PrecisionAwareOptimizerConfig
from gpt_parallel.precision_config import PrecisionConfig
from gpt_parallel.schedule_config import LearningRateConfig

__all__ = [
    "DistributedConfig",
    "ExpertParallelConfig",
    "LearningRateConfig",
    "OptimizerConfig",
    "PrecisionAwareOptimizerConfig",
    "PrecisionConfig",
    "RNGTrackerConfig",
    "SeedConfig",
    "TrainingParallelConfig",
]


@dataclass(frozen=True, kw_only=True)
class TrainingParallelConfig:
    """The original's "training" flags owned here."""

    GROUP: ClassVar[str] = "training"

    micro_batch_size: int | None = flag(
        None,
        "--micro-batch-size",
        type=int,
        help="Batch size per model instance (local batch size). Global batch size is local batch size times data parallel size times number of micro batches.",
        status=EFFECTIVE,
    )
    batch_size: int | None = flag(
        None,
        "--batch-size",
        type=int,
        help="Old batch size parameter, do not use. Use --micro- batch-size instead",
        status=EFFECTIVE,
        deprecated="--micro-batch-size",
    )
    global_batch_size: int | None = flag(
        None,
        "--global-batch-size",
        type=int,
        help="Training batch size. If set, it should be a multiple of micro-batch-size times data-parallel-size. If this value is None, then use micro-batch-size * data- parallel-size as the global batch size. This choice will result in 1 for number of micro-batches.",
        status=EFFECTIVE,
    )
    rampup_batch_size: list[str] | None = flag(
        None,
        "--rampup-batch-size",
        nargs="*",
        help="Batch size ramp up with the following values: --rampup-batch-size <start batch size> <batch size incerement> <ramp-up samples> For example: --rampup- batch-size 16 8 300000 \\ --global-batch-size 1024will start with global batch size 16 and over (1024 - 16) / 8 = 126 intervals will increasethe batch size linearly to 1024. In each intervalwe will use approximately 300000 / 126 = 2380 samples.",
        status=EFFECTIVE,
    )
    decrease_batch_size_if_needed: bool = flag(
        False,
        "--decrease-batch-size-if-needed",
        action="store_true",
        help="If set, decrease batch size if microbatch_size * dp_sizedoes not divide batch_size. Useful for KSO (Keep Soldiering On)to continue making progress if number of healthy GPUs (andcorresponding dp_size) does not support current batch_size.Old batch_size will be restored if training is re-started withdp_size that divides batch_size // microbatch_size.",
        status=EFFECTIVE,
    )
    enable_gloo_process_groups: bool = flag(
        True,
        "--disable-gloo-process-groups",
        action="store_false",
        help="Disables creation and usage of Gloo process groups.",
        status=NOT_IMPLEMENTED,
    )
    tp_comm_overlap: bool = flag(
        False,
        "--tp-comm-overlap",
        action="store_true",
        help="Enables the overlap of Tensor parallel communication and GEMM kernels.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_overlap_cfg: str | None = flag(
        None,
        "--tp-comm-overlap-cfg",
        help="Config file when tp_comm_overlap is enabled.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_overlap_ag: bool = flag(
        True,
        "--disable-tp-comm-overlap-ag",
        action="store_false",
        help="Disables the All-Gather overlap with GEMM by pipelining the GEMM and All-Gather.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_overlap_rs: bool = flag(
        True,
        "--disable-tp-comm-overlap-rs",
        action="store_false",
        help="Disables the Reduce-Scatter overlap with GEMM by pipelining the GEMM and Reduce-Scatter.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_overlap_rs_dgrad: bool = flag(
        False,
        "--tp-comm-overlap-rs-dgrad",
        action="store_true",
        help="Enables the Reduce-Scatter overlap with dgrad GEMM.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_bulk_dgrad: bool = flag(
        True,
        "--disable-tp-comm-bulk-dgrad",
        action="store_false",
        help="Disables the All-Gather overlap with bprop activation gradient GEMM.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_bulk_wgrad: bool = flag(
        True,
        "--disable-tp-comm-bulk-wgrad",
        action="store_false",
        help="Disables the Reduce-Scatter overlap with bprop weight gradient GEMM.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_bootstrap_backend: str = flag(
        "nccl",
        "--tp-comm-bootstrap-backend",
        choices=("nccl", "mpi", "gloo"),
        help="Set the bootstrapping backend of Tensor parallel communications.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    check_weight_hash_across_dp_replicas_interval: int | None = flag(
        None,
        "--check-weight-hash-across-dp-replicas-interval",
        type=int,
        help="Interval to check weight hashes are same across DP replicas. If not specified, weight hashes not checked.",
        status=EFFECTIVE,
    )
    optimizer: str = flag(
        "adam",
        "--optimizer",
        choices=("adam", "sgd"),
        help="Optimizer function",
        status=EFFECTIVE,
    )
    optimizer_cpu_offload: bool = flag(
        False,
        "--optimizer-cpu-offload",
        action="store_true",
        help="Offload optimizer state to CPU",
        status=EFFECTIVE,
    )
    optimizer_offload_fraction: float = flag(
        1.0,
        "--optimizer-offload-fraction",
        type=float,
        help="Ratio of optimizer state to offload to CPU",
        status=EFFECTIVE,
    )
    use_torch_optimizer_for_cpu_offload: bool = flag(
        False,
        "--use-torch-optimizer-for-cpu-offload",
        action="store_true",
        help="Use torch.optim.Optimizer instead of Megatron's optimizer in optimizer cpu offload mode.",
        status=NO_EFFECT,
        reason="the original's builder replaces the optimizer class it picks; the offloaded shards always step with torch's optimizer here",
    )
    overlap_cpu_optimizer_d2h_h2d: bool = flag(
        False,
        "--overlap-cpu-optimizer-d2h-h2d",
        action="store_true",
        help="Overlap CPU optimizer step, gradients D2H and updated parameters H2D.",
        status=NEEDS_GPU,
        reason="overlapping CUDA device-to-host and host-to-device copies with the CPU optimizer step",
    )
    pin_cpu_grads: bool = flag(
        True,
        "--no-pin-cpu-grads",
        action="store_false",
        help="Disable pinning of CPU memory for gradients.",
        status=NEEDS_GPU,
        reason="pinned host memory for CUDA copies of the offloaded gradients",
    )
    pin_cpu_params: bool = flag(
        True,
        "--no-pin-cpu-params",
        action="store_false",
        help="Disable pinning of CPU memory for parameters.",
        status=NEEDS_GPU,
        reason="pinned host memory for CUDA copies of the offloaded parameters",
    )
    async_tensor_model_parallel_allreduce: bool = flag(
        True,
        "--no-async-tensor-model-parallel-allreduce",
        action="store_false",
        help="DEPRECATED. This flag is ignored.",
        status=EFFECTIVE,
        reason="deprecated: maps to nothing (ignored)",
        deprecated="-",
    )
    sequence_parallel: bool = flag(
        False,
        "--sequence-parallel",
        action="store_true",
        help="Enable sequence parallel optimization.",
        status=EFFECTIVE,
    )
    gradient_accumulation_fusion: bool = flag(
        True,
        "--no-gradient-accumulation-fusion",
        action="store_false",
        help="Disable fusing gradient accumulation to weight gradient computation of linear layers",
        status=EFFECTIVE,
    )
    tp_comm_split_ag: bool = flag(
        True,
        "--disable-tp-comm-split-ag",
        action="store_false",
        help="Disables the All-Gather overlap with fprop GEMM.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    tp_comm_split_rs: bool = flag(
        True,
        "--disable-tp-comm-split-rs",
        action="store_false",
        help="Disables the Reduce-Scatter overlap with fprop GEMM.",
        status=NEEDS_GPU,
        reason="Transformer Engine userbuffers (NCCL) for TP communication overlap",
    )
    pipeline_model_parallel_comm_backend: str | None = flag(
        None,
        "--pipeline-model-parallel-comm-backend",
        choices=("nccl", "ucc"),
        help="Select a communicator backend for pipeline parallel communication. If None, the default backend will be used.",
        status=NEEDS_GPU,
        reason="an NCCL or UCC communicator for the pipeline group (CPU runs use gloo)",
    )
    high_priority_stream_groups: list[str] = flag(
        [],
        "--high-priority-stream-groups",
        nargs="*",
        help="The communicator group names to use high priority streams.",
        status=NEEDS_GPU,
        reason="CUDA stream priorities",
    )

    # Derived by validation (not flags), in the original's names.
    num_microbatches: int | None = None
    """Micro-batches per global batch (None while --rampup-batch-size ramps)."""


@dataclass(frozen=True, kw_only=True)
class SeedConfig:
    """The original's "initialization" flags owned here."""

    GROUP: ClassVar[str] = "initialization"

    seed: int = flag(
        1234,
        "--seed",
        type=int,
        help="Random seed used for python, numpy, pytorch, and cuda.",
        status=EFFECTIVE,
    )
    data_parallel_random_init: bool = flag(
        False,
        "--data-parallel-random-init",
        action="store_true",
        help="Enable random initialization of params across data parallel ranks",
        status=EFFECTIVE,
    )


@dataclass(frozen=True, kw_only=True)
class RNGTrackerConfig:
    """The original's "Transformer-Engine" flags owned here."""

    GROUP: ClassVar[str] = "Transformer-Engine"

    te_rng_tracker: bool = flag(
        False,
        "--te-rng-tracker",
        action="store_true",
        help="Use the Transformer Engine version of the random number generator. Required for CUDA graphs support.",
        status=NEEDS_GPU,
        reason="Transformer Engine's CUDA RNG tracker",
    )
    inference_rng_tracker: bool = flag(
        False,
        "--inference-rng-tracker",
        action="store_true",
        help="Use a random number generator configured for inference.",
        status=NOT_IMPLEMENTED,
    )
