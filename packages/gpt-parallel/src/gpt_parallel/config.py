"""Flags owned by gpt-parallel: parallel layout, DDP, optimizers, schedules, precision, seeds.

Each field is one flag of the original `pretrain_gpt.py` (same name, aliases, nargs, choices
and default); the field name is the argparse dest. Generated once from tools/flags/original_flags.tsv,
now maintained here; tests/pretrain/test_flags.py checks it against the original's flag table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from gpt_flags.flagspec import (
    EFFECTIVE,
    NEEDS_GPU,
    NOT_IMPLEMENTED,
    flag,
)


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """The original's "regularization" flags owned here."""

    GROUP: ClassVar[str] = "regularization"

    weight_decay: float = flag(
        0.01,
        "--weight-decay",
        type=float,
        help="Weight decay coefficient for L2 regularization.",
        status=EFFECTIVE,
    )
    start_weight_decay: float | None = flag(
        None,
        "--start-weight-decay",
        type=float,
        help="Initial weight decay coefficient for L2 regularization.",
        status=EFFECTIVE,
    )
    end_weight_decay: float | None = flag(
        None,
        "--end-weight-decay",
        type=float,
        help="End of run weight decay coefficient for L2 regularization.",
        status=EFFECTIVE,
    )
    weight_decay_incr_style: str = flag(
        "constant",
        "--weight-decay-incr-style",
        choices=("constant", "linear", "cosine"),
        help="Weight decay increment function.",
        status=EFFECTIVE,
    )
    clip_grad: float = flag(
        1.0,
        "--clip-grad",
        type=float,
        help="Gradient clipping based on global L2 norm.",
        status=EFFECTIVE,
    )
    adam_beta1: float = flag(
        0.9,
        "--adam-beta1",
        type=float,
        help="First coefficient for computing running averages of gradient and its square",
        status=EFFECTIVE,
    )
    adam_beta2: float = flag(
        0.999,
        "--adam-beta2",
        type=float,
        help="Second coefficient for computing running averages of gradient and its square",
        status=EFFECTIVE,
    )
    adam_eps: float = flag(
        1e-08,
        "--adam-eps",
        type=float,
        help="Term added to the denominator to improvenumerical stability",
        status=EFFECTIVE,
    )
    sgd_momentum: float = flag(
        0.9, "--sgd-momentum", type=float, help="Momentum factor for sgd", status=EFFECTIVE
    )


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
        status=NOT_IMPLEMENTED,
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
        status=NOT_IMPLEMENTED,
    )
    optimizer_offload_fraction: float = flag(
        1.0,
        "--optimizer-offload-fraction",
        type=float,
        help="Ratio of optimizer state to offload to CPU",
        status=NOT_IMPLEMENTED,
    )
    use_torch_optimizer_for_cpu_offload: bool = flag(
        False,
        "--use-torch-optimizer-for-cpu-offload",
        action="store_true",
        help="Use torch.optim.Optimizer instead of Megatron's optimizer in optimizer cpu offload mode.",
        status=NOT_IMPLEMENTED,
    )
    overlap_cpu_optimizer_d2h_h2d: bool = flag(
        False,
        "--overlap-cpu-optimizer-d2h-h2d",
        action="store_true",
        help="Overlap CPU optimizer step, gradients D2H and updated parameters H2D.",
        status=NOT_IMPLEMENTED,
    )
    pin_cpu_grads: bool = flag(
        True,
        "--no-pin-cpu-grads",
        action="store_false",
        help="Disable pinning of CPU memory for gradients.",
        status=NOT_IMPLEMENTED,
    )
    pin_cpu_params: bool = flag(
        True,
        "--no-pin-cpu-params",
        action="store_false",
        help="Disable pinning of CPU memory for parameters.",
        status=NOT_IMPLEMENTED,
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
        status=NOT_IMPLEMENTED,
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
        status=NOT_IMPLEMENTED,
    )
    high_priority_stream_groups: list[str] = flag(
        [],
        "--high-priority-stream-groups",
        nargs="*",
        help="The communicator group names to use high priority streams.",
        status=NEEDS_GPU,
        reason="CUDA stream priorities",
    )


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
        status=NOT_IMPLEMENTED,
    )
    use_checkpoint_opt_param_scheduler: bool = flag(
        False,
        "--use-checkpoint-opt_param-scheduler",
        action="store_true",
        help="Use checkpoint to set the values of the scheduler (learning rate, warmup iterations, minimum learning rate, maximum number of iterations, and decay style from checkpoint and ignore input arguments.",
        status=NOT_IMPLEMENTED,
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


@dataclass(frozen=True, kw_only=True)
class PrecisionConfig:
    """The original's "mixed precision" flags owned here."""

    GROUP: ClassVar[str] = "mixed precision"

    fp16: bool = flag(
        False, "--fp16", action="store_true", help="Run model in fp16 mode.", status=EFFECTIVE
    )
    bf16: bool = flag(
        False,
        "--bf16",
        action="store_true",
        help="Run model in bfloat16 mode.",
        status=EFFECTIVE,
    )
    grad_reduce_in_bf16: bool = flag(
        False,
        "--grad-reduce-in-bf16",
        action="store_true",
        help="Reduce gradients in bfloat16.",
        status=NOT_IMPLEMENTED,
    )
    loss_scale: float | None = flag(
        None,
        "--loss-scale",
        type=float,
        help="Static loss scaling, positive power of 2 values can improve fp16 convergence. If None, dynamicloss scaling is used.",
        status=EFFECTIVE,
    )
    initial_loss_scale: float = flag(
        4294967296,
        "--initial-loss-scale",
        type=float,
        help="Initial loss-scale for dynamic loss scaling.",
        status=EFFECTIVE,
    )
    min_loss_scale: float = flag(
        1.0,
        "--min-loss-scale",
        type=float,
        help="Minimum loss scale for dynamic loss scaling.",
        status=EFFECTIVE,
    )
    loss_scale_window: float = flag(
        1000,
        "--loss-scale-window",
        type=float,
        help="Window over which to raise/lower dynamic scale.",
        status=EFFECTIVE,
    )
    hysteresis: int = flag(
        2,
        "--hysteresis",
        type=int,
        help="hysteresis for dynamic loss scaling",
        status=EFFECTIVE,
    )
    accumulate_allreduce_grads_in_fp32: bool = flag(
        False,
        "--accumulate-allreduce-grads-in-fp32",
        action="store_true",
        help="Gradient accumulation and all-reduce in fp32.",
        status=EFFECTIVE,
    )
    reuse_grad_buf_for_mxfp8_param_ag: bool = flag(
        False,
        "--reuse-grad-buf-for-mxfp8-param-ag",
        action="store_true",
        help="If True, reuse the grad buffer for MXFP8 parameter all-gather.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class DistributedConfig:
    """The original's "distributed" flags owned here."""

    GROUP: ClassVar[str] = "distributed"

    tensor_model_parallel_size: int = flag(
        1,
        "--tensor-model-parallel-size",
        type=int,
        help="Degree of tensor model parallelism.",
        status=NOT_IMPLEMENTED,
    )
    pipeline_model_parallel_size: int = flag(
        1,
        "--pipeline-model-parallel-size",
        type=int,
        help="Degree of pipeline model parallelism.",
        status=NOT_IMPLEMENTED,
    )
    decoder_first_pipeline_num_layers: int | None = flag(
        None,
        "--decoder-first-pipeline-num-layers",
        type=int,
        help="The number of transformer layers on the first pipeline stage of the decoder. Default None is even split of transformer layers across all pipeline stages",
        status=NOT_IMPLEMENTED,
    )
    decoder_last_pipeline_num_layers: int | None = flag(
        None,
        "--decoder-last-pipeline-num-layers",
        type=int,
        help="The number of transformer layers on the last pipeline stage of the decoder. Default None is even split of transformer layers across all pipeline stages",
        status=NOT_IMPLEMENTED,
    )
    pipeline_model_parallel_layout: str | None = flag(
        None,
        "--pipeline-model-parallel-layout",
        help='A string that describes a custom pipeline model parallel layout. e.g., "E|(t|)*3,m|m||L". E, L, t, m denotes embedding, loss, transformer decoder layer, and mtp layer, respectively. Stages are split by "|". Replicated stages or layers can be described with multiplication. Commas can be used cosmetically. Default None is not using this argument to set the layout.',
        status=NOT_IMPLEMENTED,
    )
    model_parallel_size: int | None = flag(
        None,
        "--model-parallel-size",
        type=int,
        help="Old model parallel argument, do not use. Use --tensor- model-parallel-size instead.",
        status=EFFECTIVE,
        reason="deprecated: maps to --tensor-model-parallel-size",
        deprecated="--tensor-model-parallel-size",
    )
    num_layers_per_virtual_pipeline_stage: int | None = flag(
        None,
        "--num-layers-per-virtual-pipeline-stage",
        type=int,
        help="Number of layers per virtual pipeline stage",
        status=NOT_IMPLEMENTED,
    )
    num_virtual_stages_per_pipeline_rank: int | None = flag(
        None,
        "--num-virtual-stages-per-pipeline-rank",
        type=int,
        help="Number of virtual pipeline stages per pipeline parallelism rank",
        status=NOT_IMPLEMENTED,
    )
    microbatch_group_size_per_vp_stage: int | None = flag(
        None,
        "--microbatch-group-size-per-virtual-pipeline-stage",
        type=int,
        help="Number of contiguous microbatches per virtual pipeline stage",
        status=NOT_IMPLEMENTED,
    )
    overlap_p2p_comm: bool = flag(
        True,
        "--no-overlap-p2p-communication",
        action="store_false",
        help="overlap pipeline parallel communication with forward and backward chunks in 1F1B",
        status=NOT_IMPLEMENTED,
    )
    overlap_p2p_comm_warmup_flush: bool = flag(
        False,
        "--overlap-p2p-communication-warmup-flush",
        action="store_true",
        help="if set, overlap pipeline parallel communication in warmup and flush",
        status=NOT_IMPLEMENTED,
    )
    distributed_backend: str = flag(
        "nccl",
        "--distributed-backend",
        choices=("nccl", "gloo"),
        help="Which backend to use for distributed training.",
        status=EFFECTIVE,
    )
    distributed_timeout_minutes: int = flag(
        10,
        "--distributed-timeout-minutes",
        type=int,
        help="Timeout minutes for torch.distributed.",
        status=EFFECTIVE,
    )
    overlap_grad_reduce: bool = flag(
        False,
        "--overlap-grad-reduce",
        action="store_true",
        help="If set, overlap DDP grad reduce.",
        status=NOT_IMPLEMENTED,
    )
    defer_embedding_wgrad_compute: bool = flag(
        False,
        "--defer-embedding-wgrad-compute",
        action="store_true",
        help="If set, defers the vocabulary projection linear layer weightgradient compute to pipeline flush.",
        status=NOT_IMPLEMENTED,
    )
    wgrad_deferral_limit: int = flag(
        0,
        "--wgrad-deferral-limit",
        type=int,
        help="Number of micro-batches for whichweight gradient computation of vocabulary projection is deferred, defaults to 0 whichmeans all the micro-batches are deferred. Invalid if `defer-embedding-wgrad-compute`is not set",
        status=NOT_IMPLEMENTED,
    )
    align_grad_reduce: bool = flag(
        True,
        "--no-align-grad-reduce",
        action="store_false",
        help="If not set, all PP stages will launch gradient reduces simultaneously. Otherwise, each PP stage will independently launch as needed.",
        status=NOT_IMPLEMENTED,
    )
    ddp_num_buckets: int | None = flag(
        None,
        "--ddp-num-buckets",
        type=int,
        help="Number of buckets for data-parallel communication",
        status=NOT_IMPLEMENTED,
    )
    ddp_bucket_size: int | None = flag(
        None,
        "--ddp-bucket-size",
        type=int,
        help="Bucket size for data-parallel communication",
        status=NOT_IMPLEMENTED,
    )
    ddp_pad_buckets_for_high_nccl_busbw: bool = flag(
        False,
        "--ddp-pad-buckets-for-high-nccl-busbw",
        action="store_true",
        help="If set, make sure the bucket size is divisible by a large power of 2 (2^16) to ensure NCCL collectives have high bus bandwidth at large DP counts, since NCCL message size (which for ring algorithms is bucket_size / dp_size) apparently needs to be divisible by a power of 2 for high busbw.",
        status=NOT_IMPLEMENTED,
    )
    ddp_average_in_collective: bool = flag(
        False,
        "--ddp-average-in-collective",
        action="store_true",
        help="If set, average directly in data-parallel communication collective.",
        status=NOT_IMPLEMENTED,
    )
    overlap_param_gather: bool = flag(
        False,
        "--overlap-param-gather",
        action="store_true",
        help="If set, overlap param all-gather in distributed optimizer.",
        status=NOT_IMPLEMENTED,
    )
    overlap_param_gather_with_optimizer_step: bool = flag(
        False,
        "--overlap-param-gather-with-optimizer-step",
        action="store_true",
        help="If set, overlap param all-gather of first bucket with optimizer step.",
        status=NOT_IMPLEMENTED,
    )
    align_param_gather: bool = flag(
        True,
        "--no-align-param-gather",
        action="store_false",
        help="If not set, all PP stages will launch param all- gathers simultaneously. Otherwise, each PP stage will independently launch as needed.",
        status=NOT_IMPLEMENTED,
    )
    scatter_gather_tensors_in_pipeline: bool = flag(
        True,
        "--no-scatter-gather-tensors-in-pipeline",
        action="store_false",
        help="If not set, use scatter/gather to optimize communication of tensors in pipeline.",
        status=NOT_IMPLEMENTED,
    )
    use_ring_exchange_p2p: bool = flag(
        False,
        "--use-ring-exchange-p2p",
        action="store_true",
        help="If set, use custom-built ring exchange for p2p communications. Note that this option will require a custom built image that support ring-exchange p2p.",
        status=NOT_IMPLEMENTED,
    )
    local_rank: int = flag(
        int(os.getenv("LOCAL_RANK", "0")),
        "--local-rank",
        type=int,
        help="local rank passed from distributed launcher.",
        status=EFFECTIVE,
    )
    lazy_mpu_init: bool | None = flag(
        None,
        "--lazy-mpu-init",
        type=bool,
        help="If set to True, initialize_megatron() skips DDP initialization and returns function to complete it instead. Also turns on --use-cpu-initialization flag. This is for external DDP manager.",
        status=NOT_IMPLEMENTED,
    )
    account_for_embedding_in_pipeline_split: bool = flag(
        False,
        "--account-for-embedding-in-pipeline-split",
        action="store_true",
        help="If set, *input* embedding layer will be treated as a standard transformerlayer in the context of partition and placement for pipeline parallelism.",
        status=NOT_IMPLEMENTED,
    )
    account_for_loss_in_pipeline_split: bool = flag(
        False,
        "--account-for-loss-in-pipeline-split",
        action="store_true",
        help="If set, loss layer will be treated as a standard transformerlayer in the context of partition and placement for pipeline parallelism.",
        status=NOT_IMPLEMENTED,
    )
    use_distributed_optimizer: bool = flag(
        False,
        "--use-distributed-optimizer",
        action="store_true",
        help="Use distributed optimizer.",
        status=NOT_IMPLEMENTED,
    )
    nccl_ub: bool = flag(
        False,
        "--use-nccl-ub",
        action="store_true",
        help="Use the userbuffer registration for DP/FSDP communication buffers.This option will reduce GPU SM usage for the DP/FSDP communication,which is improving the performance of the overlapped computation.",
        status=NEEDS_GPU,
        reason="NCCL user buffers",
    )
    use_sharp: bool = flag(
        False,
        "--use-sharp",
        action="store_true",
        help="Required to enable SHARP communication.",
        status=NEEDS_GPU,
        reason="SHARP in-network reductions (NCCL on InfiniBand)",
    )
    sharp_enabled_group: str | None = flag(
        None,
        "--sharp-enabled-group",
        choices=("dp", "dp_replica"),
        help="IB SHARP can be enabled from only one communication group. By default, it is enabled from dp group. Available options: [dp, dp_replica]",
        status=NEEDS_GPU,
        reason="SHARP in-network reductions (NCCL on InfiniBand)",
    )
    use_megatron_fsdp: bool = flag(
        False,
        "--use-megatron-fsdp",
        action="store_true",
        help="Use the Megatron FSDP code path in DDP.",
        status=NOT_IMPLEMENTED,
    )
    init_model_with_meta_device: bool = flag(
        False, "--init-model-with-meta-device", action="store_true", status=NOT_IMPLEMENTED
    )
    data_parallel_sharding_strategy: str = flag(
        "no_shard",
        "--data-parallel-sharding-strategy",
        choices=("no_shard", "optim", "optim_grads", "optim_grads_params"),
        help="Sharding strategy of data parallelism.",
        status=NOT_IMPLEMENTED,
    )
    gradient_reduce_div_fusion: bool = flag(
        True,
        "--no-gradient-reduce-div-fusion",
        action="store_false",
        help="If not set, fuse the division in gradient reduce.",
        status=NOT_IMPLEMENTED,
    )
    fsdp_double_buffer: bool = flag(
        False,
        "--fsdp-double-buffer",
        action="store_true",
        help="Enable double buffering for temporary memory needed for Megatron FSDP communications. Double-buffering the communication memory improves memory management efficiency by reusing previously allocated buffers, rather than creating new buffers for each FSDP communication. This is required for user buffer registration and is enabled by default when using NCCL user buffers.",
        status=NOT_IMPLEMENTED,
    )
    suggested_communication_unit_size: int | None = flag(
        None,
        "--suggested-communication-unit-size",
        type=int,
        help="Specifies the number of elements to communicate at once during FSDP (Fully Sharded Data Parallel) operations. This flag also affects FSDP all-gather prefetch behavior. Setting a larger value increases the communication buffer size, while a smaller value disables prefetching and may degrade performance. Adjust this value based on your system's memory and performance requirements.",
        status=NOT_IMPLEMENTED,
    )
    keep_fp8_transpose_cache: bool = flag(
        False,
        "--keep-fp8-transpose-cache",
        action="store_true",
        help="If set, keep the fp8 transpose cache when using Megatron FSDP.",
        status=NOT_IMPLEMENTED,
    )
    enable_full_sharding_in_hsdp: bool = flag(
        False,
        "--enable-full-sharding-in-hsdp",
        action="store_true",
        help="If set, enable full sharding in megatron-fsdp Hybrid Sharded Data Parallel (HSDP) mode.",
        status=NOT_IMPLEMENTED,
    )
    num_distributed_optimizer_instances: int = flag(
        1,
        "--num-distributed-optimizer-instances",
        type=int,
        help="Number of Distributed Optimizer copies across Data Parallel domain.",
        status=NOT_IMPLEMENTED,
    )
    use_torch_fsdp2: bool = flag(
        False,
        "--use-torch-fsdp2",
        action="store_true",
        help="Use the torch FSDP2 implementation. FSDP2 has not been tested with pipeline parallelism, and may contain bugs.",
        status=NOT_IMPLEMENTED,
    )
    torch_fsdp2_reshard_after_forward: bool = flag(
        True,
        "--torch-fsdp2-no-reshard-after-forward",
        action="store_false",
        help="Whether to reshard weights after forward pass when using PyTorch FSDP2. Set to enable FSDP ZeRO-2.",
        status=NOT_IMPLEMENTED,
    )
    context_parallel_size: int = flag(
        1,
        "--context-parallel-size",
        type=int,
        help="Degree of context parallelism.",
        status=NOT_IMPLEMENTED,
    )
    cp_comm_type: list[str] = flag(
        ["p2p"],
        "--cp-comm-type",
        nargs="+",
        help="Inter-gpu communication type for context parallelism: p2p, a2a, allgather or a2a+p2p. If a single string is provided, all layers will share the same communication type. Users can also specify separated types for each layer like --cp-comm-type p2p p2p a2a a2a a2a+p2p a2a+p2p",
        status=NOT_IMPLEMENTED,
    )
    hierarchical_context_parallel_sizes: list[int] | None = flag(
        None,
        "--hierarchical-context-parallel-sizes",
        type=int,
        nargs="+",
        help="Degrees of the hierarchical context parallelism. Users should provide a list to specify the sizes for different levels. --hierarchical-context-parallel- sizes 2 4 indicates every two adjacent gpus forms the first level of cp groups and the cp ranks with the same odevity forms the second level of cp groups.",
        status=NOT_IMPLEMENTED,
    )
    nccl_communicator_config_path: str | None = flag(
        None,
        "--nccl-communicator-config-path",
        help="Path to the yaml file with NCCL communicator configurations. The number of min/max thread groups and thread group cluster size of each communicator can be configured by setting `min_ctas`, `max_ctas`, and `cga_cluster_size`.",
        status=NEEDS_GPU,
        reason="NCCL communicators",
    )
    use_tp_pp_dp_mapping: bool = flag(
        False,
        "--use-tp-pp-dp-mapping",
        action="store_true",
        help="If set, distributed ranks initialize order is changed from tp-cp-ep-dp-pp to tp-cp-ep-pp-dp.",
        status=NOT_IMPLEMENTED,
    )
    replication: bool = flag(
        False,
        "--replication",
        action="store_true",
        help="If set, replication of local checkpoints is enabled. Needs to be enabled on all ranks.",
        status=NOT_IMPLEMENTED,
    )
    replication_jump: int | None = flag(
        None,
        "--replication-jump",
        type=int,
        help="Specifies `J`, the spacing between ranks storing replicas of a given rank's data. Replicas for rank `n` may be on ranks `n+J`, `n+2J`, ..., or `n-J`, `n-2J`, etc. This flag has an effect only if --replication is used. and must be consistent across all ranks.",
        status=NOT_IMPLEMENTED,
    )
    replication_factor: int = flag(
        2,
        "--replication-factor",
        type=int,
        help="Number of machines storing the replica of a given rank's data.",
        status=NOT_IMPLEMENTED,
    )


@dataclass(frozen=True, kw_only=True)
class ExpertParallelConfig:
    """The original's "moe" flags owned here."""

    GROUP: ClassVar[str] = "moe"

    expert_model_parallel_size: int = flag(
        1,
        "--expert-model-parallel-size",
        type=int,
        help="Degree of expert model parallelism.",
        status=NOT_IMPLEMENTED,
    )
    expert_tensor_parallel_size: int | None = flag(
        None,
        "--expert-tensor-parallel-size",
        type=int,
        help="Degree of expert model parallelism. Default is None, which will be set to the value of --tensor-model- paralle-size.",
        status=NOT_IMPLEMENTED,
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


@dataclass(frozen=True, kw_only=True)
class PrecisionAwareOptimizerConfig:
    """The original's "experimental" flags owned here."""

    GROUP: ClassVar[str] = "experimental"

    use_precision_aware_optimizer: bool = flag(
        False,
        "--use-precision-aware-optimizer",
        action="store_true",
        help="Use the precision-aware optimizer in TransformerEngine, which allows setting the main params and optimizer states to lower precision, such as fp16, bf16 and fp8.",
        status=NOT_IMPLEMENTED,
    )
    main_grads_dtype: str = flag(
        "fp32",
        "--main-grads-dtype",
        choices=("fp32", "bf16"),
        help="Dtype of main grads when enabling precision-aware- optimizer",
        status=NOT_IMPLEMENTED,
    )
    main_params_dtype: str = flag(
        "fp32",
        "--main-params-dtype",
        choices=("fp32", "fp16"),
        help="Dtype of main params when enabling precision-aware- optimizer",
        status=NOT_IMPLEMENTED,
    )
    exp_avg_dtype: str = flag(
        "fp32",
        "--exp-avg-dtype",
        choices=("fp32", "fp16", "bf16", "fp8"),
        help="Dtype of exp_avg (1st moment in adam optimizer) when enabling precision-aware-optimizer. This dtype is used for storing the optimizer state in memory during training but does not affect the precision in the kernel computation.",
        status=NOT_IMPLEMENTED,
    )
    exp_avg_sq_dtype: str = flag(
        "fp32",
        "--exp-avg-sq-dtype",
        choices=("fp32", "fp16", "bf16", "fp8"),
        help="Dtype of exp_avg_sq (2nd moment in adam optimizer) when enabling precision-aware-optimizer. This dtype is used for storing the optimizer state in memory during training but does not affect the precision in the kernel computation.",
        status=NOT_IMPLEMENTED,
    )
