"""Parallel-layout flags owned by gpt-parallel: tensor/pipeline/context/expert sizes, DDP and
FSDP options, the process-group backend (read by `parallel_state.ParallelState`).
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
class DistributedConfig:
    """The original's "distributed" flags owned here."""

    GROUP: ClassVar[str] = "distributed"

    tensor_model_parallel_size: int = flag(
        1,
        "--tensor-model-parallel-size",
        type=int,
        help="Degree of tensor model parallelism.",
        status=EFFECTIVE,
    )
    pipeline_model_parallel_size: int = flag(
        1,
        "--pipeline-model-parallel-size",
        type=int,
        help="Degree of pipeline model parallelism.",
        status=EFFECTIVE,
    )
    decoder_first_pipeline_num_layers: int | None = flag(
        None,
        "--decoder-first-pipeline-num-layers",
        type=int,
        help="The number of transformer layers on the first pipeline stage of the decoder. Default None is even split of transformer layers across all pipeline stages",
        status=EFFECTIVE,
    )
    decoder_last_pipeline_num_layers: int | None = flag(
        None,
        "--decoder-last-pipeline-num-layers",
        type=int,
        help="The number of transformer layers on the last pipeline stage of the decoder. Default None is even split of transformer layers across all pipeline stages",
        status=EFFECTIVE,
    )
    pipeline_model_parallel_layout: str | None = flag(
        None,
        "--pipeline-model-parallel-layout",
        help='A string that describes a custom pipeline model parallel layout. e.g., "E|(t|)*3,m|m||L". E, L, t, m denotes embedding, loss, transformer decoder layer, and mtp layer, respectively. Stages are split by "|". Replicated stages or layers can be described with multiplication. Commas can be used cosmetically. Default None is not using this argument to set the layout.',
        status=EFFECTIVE,
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
        status=EFFECTIVE,
    )
    num_virtual_stages_per_pipeline_rank: int | None = flag(
        None,
        "--num-virtual-stages-per-pipeline-rank",
        type=int,
        help="Number of virtual pipeline stages per pipeline parallelism rank",
        status=EFFECTIVE,
    )
    microbatch_group_size_per_vp_stage: int | None = flag(
        None,
        "--microbatch-group-size-per-virtual-pipeline-stage",
        type=int,
        help="Number of contiguous microbatches per virtual pipeline stage",
        status=EFFECTIVE,
    )
    overlap_p2p_comm: bool = flag(
        True,
        "--no-overlap-p2p-communication",
        action="store_false",
        help="overlap pipeline parallel communication with forward and backward chunks in 1F1B",
        status=EFFECTIVE,
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
        status=EFFECTIVE,
    )
    defer_embedding_wgrad_compute: bool = flag(
        False,
        "--defer-embedding-wgrad-compute",
        action="store_true",
        help="If set, defers the vocabulary projection linear layer weightgradient compute to pipeline flush.",
        status=NEEDS_GPU,
        reason="the fused CUDA weight-gradient accumulation (--gradient-accumulation-fusion) it defers",
    )
    wgrad_deferral_limit: int = flag(
        0,
        "--wgrad-deferral-limit",
        type=int,
        help="Number of micro-batches for whichweight gradient computation of vocabulary projection is deferred, defaults to 0 whichmeans all the micro-batches are deferred. Invalid if `defer-embedding-wgrad-compute`is not set",
        status=NEEDS_GPU,
        reason="the fused CUDA weight-gradient accumulation (--gradient-accumulation-fusion) it defers",
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
        status=EFFECTIVE,
    )
    ddp_bucket_size: int | None = flag(
        None,
        "--ddp-bucket-size",
        type=int,
        help="Bucket size for data-parallel communication",
        status=EFFECTIVE,
    )
    ddp_pad_buckets_for_high_nccl_busbw: bool = flag(
        False,
        "--ddp-pad-buckets-for-high-nccl-busbw",
        action="store_true",
        help="If set, make sure the bucket size is divisible by a large power of 2 (2^16) to ensure NCCL collectives have high bus bandwidth at large DP counts, since NCCL message size (which for ring algorithms is bucket_size / dp_size) apparently needs to be divisible by a power of 2 for high busbw.",
        status=EFFECTIVE,
    )
    ddp_average_in_collective: bool = flag(
        False,
        "--ddp-average-in-collective",
        action="store_true",
        help="If set, average directly in data-parallel communication collective.",
        status=EFFECTIVE,
    )
    overlap_param_gather: bool = flag(
        False,
        "--overlap-param-gather",
        action="store_true",
        help="If set, overlap param all-gather in distributed optimizer.",
        status=EFFECTIVE,
    )
    overlap_param_gather_with_optimizer_step: bool = flag(
        False,
        "--overlap-param-gather-with-optimizer-step",
        action="store_true",
        help="If set, overlap param all-gather of first bucket with optimizer step.",
        status=EFFECTIVE,
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
        status=EFFECTIVE,
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
        status=EFFECTIVE,
    )
    account_for_loss_in_pipeline_split: bool = flag(
        False,
        "--account-for-loss-in-pipeline-split",
        action="store_true",
        help="If set, loss layer will be treated as a standard transformerlayer in the context of partition and placement for pipeline parallelism.",
        status=EFFECTIVE,
    )
    use_distributed_optimizer: bool = flag(
        False,
        "--use-distributed-optimizer",
        action="store_true",
        help="Use distributed optimizer.",
        status=EFFECTIVE,
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
        status=EFFECTIVE,
    )
    init_model_with_meta_device: bool = flag(
        False, "--init-model-with-meta-device", action="store_true", status=NOT_IMPLEMENTED
    )
    data_parallel_sharding_strategy: str = flag(
        "no_shard",
        "--data-parallel-sharding-strategy",
        choices=("no_shard", "optim", "optim_grads", "optim_grads_params"),
        help="Sharding strategy of data parallelism.",
        status=EFFECTIVE,
    )
    gradient_reduce_div_fusion: bool = flag(
        True,
        "--no-gradient-reduce-div-fusion",
        action="store_false",
        help="If not set, fuse the division in gradient reduce.",
        status=NEEDS_GPU,
        reason="NCCL's pre-multiplied-sum reduction (gloo always divides in a separate multiply)",
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
        status=EFFECTIVE,
    )
    use_torch_fsdp2: bool = flag(
        False,
        "--use-torch-fsdp2",
        action="store_true",
        help="Use the torch FSDP2 implementation. FSDP2 has not been tested with pipeline parallelism, and may contain bugs.",
        status=EFFECTIVE,
    )
    torch_fsdp2_reshard_after_forward: bool = flag(
        True,
        "--torch-fsdp2-no-reshard-after-forward",
        action="store_false",
        help="Whether to reshard weights after forward pass when using PyTorch FSDP2. Set to enable FSDP ZeRO-2.",
        status=EFFECTIVE,
    )
    context_parallel_size: int = flag(
        1,
        "--context-parallel-size",
        type=int,
        help="Degree of context parallelism.",
        status=EFFECTIVE,
    )
    cp_comm_type: list[str] = flag(
        ["p2p"],
        "--cp-comm-type",
        nargs="+",
        help="Inter-gpu communication type for context parallelism: p2p, a2a, allgather or a2a+p2p. If a single string is provided, all layers will share the same communication type. Users can also specify separated types for each layer like --cp-comm-type p2p p2p a2a a2a a2a+p2p a2a+p2p",
        status=EFFECTIVE,
    )
    hierarchical_context_parallel_sizes: list[int] | None = flag(
        None,
        "--hierarchical-context-parallel-sizes",
        type=int,
        nargs="+",
        help="Degrees of the hierarchical context parallelism. Users should provide a list to specify the sizes for different levels. --hierarchical-context-parallel- sizes 2 4 indicates every two adjacent gpus forms the first level of cp groups and the cp ranks with the same odevity forms the second level of cp groups.",
        status=EFFECTIVE,
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
        status=EFFECTIVE,
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

    # Derived by validation (not flags), in the original's names.
    world_size: int | None = None
    """Number of processes in the run."""
    data_parallel_size: int | None = None
    """world size / (tensor x pipeline x context parallel sizes)."""
    transformer_pipeline_model_parallel_size: int | None = None
    """Pipeline stages that hold transformer layers."""
    virtual_pipeline_model_parallel_size: int | None = None
    """Model chunks per pipeline rank (None without an interleaved schedule)."""


@dataclass(frozen=True, kw_only=True)
class ExpertParallelConfig:
    """The original's "moe" flags owned here."""

    GROUP: ClassVar[str] = "moe"

    expert_model_parallel_size: int = flag(
        1,
        "--expert-model-parallel-size",
        type=int,
        help="Degree of expert model parallelism.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_parallel.py",
    )
    expert_tensor_parallel_size: int | None = flag(
        None,
        "--expert-tensor-parallel-size",
        type=int,
        help="Degree of expert model parallelism. Default is None, which will be set to the value of --tensor-model- paralle-size.",
        status=EFFECTIVE,
        reason="tests/pretrain/test_moe_parallel.py",
    )
