"""Parallel sizes: the data-parallel size, virtual pipeline stages and what each layout needs."""

from __future__ import annotations

from gpt_flags.flagspec import from_namespace
from gpt_parallel.layout_config import DistributedConfig
from gpt_parallel.pipeline_layout import plan_from_config

from ..errors import ArgsError
from .context import Resolution, require


def resolve_parallel_sizes(r: Resolution) -> None:
    a = r.args
    for flag_name, value in (
        ("--tensor-model-parallel-size", a.tensor_model_parallel_size),
        ("--pipeline-model-parallel-size", a.pipeline_model_parallel_size),
        ("--context-parallel-size", a.context_parallel_size),
        ("--expert-model-parallel-size", a.expert_model_parallel_size),
    ):
        require(value >= 1, f"{flag_name} must be at least 1, got {value}")
    model_size = (
        a.tensor_model_parallel_size * a.pipeline_model_parallel_size * a.context_parallel_size
    )
    require(
        r.world_size % model_size == 0,
        f"world size ({r.world_size}) is not divisible by --tensor-model-parallel-size x "
        f"--pipeline-model-parallel-size x --context-parallel-size ({model_size})",
    )
    a.world_size = r.world_size
    a.data_parallel_size = r.world_size // model_size
    a.transformer_pipeline_model_parallel_size = a.pipeline_model_parallel_size
    if a.expert_tensor_parallel_size is None:
        a.expert_tensor_parallel_size = a.tensor_model_parallel_size
    r.say(
        f"using world size: {r.world_size}, data-parallel size: {a.data_parallel_size}, "
        f"context-parallel size: {a.context_parallel_size}, "
        f"hierarchical context-parallel sizes: {a.hierarchical_context_parallel_sizes}, "
        f"tensor-model-parallel size: {a.tensor_model_parallel_size}, "
        f"pipeline-model-parallel size: {a.pipeline_model_parallel_size}"
    )
    require(
        not (a.sequence_parallel and a.tensor_model_parallel_size == 1),
        "--sequence-parallel needs --tensor-model-parallel-size > 1 (it splits the sequence "
        "over the tensor-parallel ranks)",
    )
    require(
        not a.tp_comm_overlap or a.sequence_parallel,
        "--tp-comm-overlap needs --sequence-parallel",
    )
    if a.expert_model_parallel_size > 1:
        require(
            a.num_experts is not None and a.num_experts > 0,
            "--expert-model-parallel-size > 1 needs --num-experts",
        )
        require(
            a.num_experts % a.expert_model_parallel_size == 0,
            f"--num-experts ({a.num_experts}) must be divisible by --expert-model-parallel-size "
            f"({a.expert_model_parallel_size})",
        )
        require(not a.fp16, "--expert-model-parallel-size > 1 does not support --fp16")
    if a.num_experts is not None:
        etp, ep = a.expert_tensor_parallel_size, a.expert_model_parallel_size
        require(
            etp == 1,
            f"--expert-tensor-parallel-size {etp}: experts split over tensor-parallel ranks are "
            "not implemented yet (pass --expert-tensor-parallel-size 1)",
        )
        expert_size = etp * ep * a.pipeline_model_parallel_size
        require(
            r.world_size % expert_size == 0,
            f"world size ({r.world_size}) is not divisible by --expert-tensor-parallel-size x "
            f"--expert-model-parallel-size x --pipeline-model-parallel-size ({expert_size})",
        )
    if a.context_parallel_size > 1 and a.seq_length is not None:
        require(
            a.seq_length % (2 * a.context_parallel_size) == 0,
            f"--seq-length ({a.seq_length}) must be divisible by 2 x --context-parallel-size "
            f"({2 * a.context_parallel_size})",
        )
    require(
        not (a.use_torch_fsdp2 and a.use_megatron_fsdp),
        "--use-torch-fsdp2 and --use-megatron-fsdp are mutually exclusive",
    )
    if a.overlap_param_gather:
        require(
            a.use_distributed_optimizer or a.use_megatron_fsdp,
            "--overlap-param-gather needs --use-distributed-optimizer",
        )
        require(a.overlap_grad_reduce, "--overlap-param-gather needs --overlap-grad-reduce")
    if a.overlap_param_gather_with_optimizer_step:
        require(
            a.overlap_param_gather,
            "--overlap-param-gather-with-optimizer-step needs --overlap-param-gather",
        )
        require(
            a.num_layers_per_virtual_pipeline_stage is not None
            or a.num_virtual_stages_per_pipeline_rank is not None
            or a.pipeline_model_parallel_layout is not None,
            "--overlap-param-gather-with-optimizer-step needs interleaved pipeline parallelism "
            "(virtual pipeline stages), as in the original",
        )
        require(
            a.ckpt_format == "torch",
            f"--overlap-param-gather-with-optimizer-step does not support --ckpt-format "
            f"{a.ckpt_format} (distributed checkpointing); use --ckpt-format torch",
        )
    if a.optimizer_cpu_offload:
        require(
            a.use_distributed_optimizer,
            "--optimizer-cpu-offload needs --use-distributed-optimizer (it offloads the "
            "distributed optimizer's fp32 shards and state)",
        )
    if a.num_distributed_optimizer_instances > 1:
        require(
            a.use_distributed_optimizer,
            "--num-distributed-optimizer-instances > 1 needs --use-distributed-optimizer",
        )
    if a.distribute_saved_activations:
        require(
            a.tensor_model_parallel_size > 1,
            "--distribute-saved-activations needs --tensor-model-parallel-size > 1",
        )
        require(
            a.recompute_granularity == "full",
            "--distribute-saved-activations needs --recompute-granularity full",
        )


def resolve_virtual_pipeline(r: Resolution) -> None:
    a = r.args
    pp = a.pipeline_model_parallel_size
    given = [
        name
        for name, value in (
            ("--num-layers-per-virtual-pipeline-stage", a.num_layers_per_virtual_pipeline_stage),
            ("--num-virtual-stages-per-pipeline-rank", a.num_virtual_stages_per_pipeline_rank),
            ("--pipeline-model-parallel-layout", a.pipeline_model_parallel_layout),
        )
        if value is not None
    ]
    require(len(given) <= 1, f"{' and '.join(given)} are mutually exclusive")
    vpp = None
    if a.num_layers_per_virtual_pipeline_stage is not None:
        require(
            pp > 1,
            "--num-layers-per-virtual-pipeline-stage needs --pipeline-model-parallel-size > 1",
        )
        layers = a.num_layers
        if a.account_for_embedding_in_pipeline_split:
            layers += 1
        if a.account_for_loss_in_pipeline_split:
            layers += 1
        require(
            layers % pp == 0 and (layers // pp) % a.num_layers_per_virtual_pipeline_stage == 0,
            f"--num-layers ({a.num_layers}) per pipeline stage must be divisible by "
            f"--num-layers-per-virtual-pipeline-stage ({a.num_layers_per_virtual_pipeline_stage})",
        )
        vpp = (layers // pp) // a.num_layers_per_virtual_pipeline_stage
    elif a.num_virtual_stages_per_pipeline_rank is not None:
        require(
            pp > 1,
            "--num-virtual-stages-per-pipeline-rank needs --pipeline-model-parallel-size > 1",
        )
        vpp = a.num_virtual_stages_per_pipeline_rank
    if vpp == 1:
        vpp = None
    if vpp is not None:
        require(
            pp > 2 or (pp > 1 and a.overlap_p2p_comm),
            "an interleaved pipeline schedule (virtual stages) needs --pipeline-model-parallel-size > 2",
        )
    else:
        a.overlap_p2p_comm = False
        a.align_param_gather = False
    a.virtual_pipeline_model_parallel_size = vpp
    uneven = (
        a.decoder_first_pipeline_num_layers is not None
        or a.decoder_last_pipeline_num_layers is not None
        or a.pipeline_model_parallel_layout is not None
        or a.account_for_embedding_in_pipeline_split
        or a.account_for_loss_in_pipeline_split
    )
    if not uneven and a.num_layers is not None:
        require(
            a.num_layers % pp == 0,
            f"--num-layers ({a.num_layers}) must be divisible by --pipeline-model-parallel-size ({pp})",
        )


def check_pipeline_layout(r: Resolution) -> None:
    """Every pipeline stage gets whole layers (even split, first/last counts, the layout
    string), checked before any process group exists so every rank stops with one line."""
    a = r.args
    if a.pipeline_model_parallel_size == 1 and a.pipeline_model_parallel_layout is None:
        return
    try:
        plan_from_config(from_namespace(DistributedConfig, a), num_layers=a.num_layers)
    except ValueError as err:
        raise ArgsError(str(err)) from None
