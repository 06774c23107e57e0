"""From the process groups to the parts the model and the training step are built with.

The ParallelState owns the groups; this module hands each consumer the slice it needs: the
tensor- and context-parallel partitions the provider builds the model from, the data-parallel
wrapper (gradients in flat buffers reduced over the data x context group), the group the
gradient norm is summed over, and the step's gradient finalisation (the original's
``finalize_model_grads``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from gpt_models.partition import ContextParallelPartition, TensorParallelPartition
from gpt_models.tp_shards import has_tensor_parallel_partial_grad
from gpt_parallel.collectives import all_reduce_, group_size
from gpt_parallel.context_parallel import ContextParallelGroups
from gpt_parallel.ddp import DDPConfig, DistributedDataParallel
from gpt_parallel.fsdp import DataParallel, strategy_from_flags
from gpt_parallel.fsdp import wrap_data_parallel as wrap_sharded
from gpt_parallel.parallel_state import ParallelState

from .run_config import RunConfig


def model_partitions(
    run: RunConfig, state: ParallelState
) -> tuple[TensorParallelPartition, ContextParallelPartition]:
    """This rank's tensor- and context-parallel slice of the model."""
    tensor = TensorParallelPartition(
        size=state.tp_size,
        rank=state.tp_rank,
        group=state.group("tp"),
        sequence_parallel=run.parallel.sequence_parallel,
    )
    context = ContextParallelPartition(
        size=state.cp_size,
        rank=state.cp_rank,
        groups=ContextParallelGroups(
            state.group("cp"), state.group("hcp-a2a"), state.group("hcp-p2p")
        ),
        comm_types=tuple(run.distributed.cp_comm_type),
    )
    return tensor, context


def ddp_config(run: RunConfig, model: torch.nn.Module) -> DDPConfig:
    """The data-parallel wrapper's settings from the flags."""
    d, precision = run.distributed, run.precision
    num_parameters = sum(p.numel() for p in model.parameters())
    return DDPConfig(
        grad_reduce_in_fp32=precision.accumulate_allreduce_grads_in_fp32,
        overlap_grad_reduce=d.overlap_grad_reduce,
        overlap_param_gather=d.overlap_param_gather,
        use_distributed_optimizer=d.use_distributed_optimizer,
        bucket_size=DDPConfig.bucket_size_from(
            d.ddp_bucket_size, d.ddp_num_buckets, num_parameters
        ),
        average_in_collective=d.ddp_average_in_collective,
        pad_buckets_for_high_nccl_busbw=d.ddp_pad_buckets_for_high_nccl_busbw,
        check_for_nan_in_grad=run.loop.check_for_nan_in_loss_and_grad,
        num_distributed_optimizer_instances=d.num_distributed_optimizer_instances,
        overlap_param_gather_with_optimizer_step=d.overlap_param_gather_with_optimizer_step,
        gradient_reduce_div_fusion=d.gradient_reduce_div_fusion,
    )


def uses_fsdp(run: RunConfig) -> bool:
    return run.distributed.use_torch_fsdp2 or run.distributed.use_megatron_fsdp


def wrap_data_parallel(
    model: torch.nn.Module, run: RunConfig, state: ParallelState
) -> DistributedDataParallel | None:
    """The DDP wrapper over the data x context group, or None for a one-process run without
    the distributed optimizer (whose gradients stay in ``.grad``, as before)."""
    if state.world_size == 1 and not run.distributed.use_distributed_optimizer:
        return None
    ddp = DistributedDataParallel(
        model,
        ddp_config(run, model),
        state.group("dp-cp"),
        intra_instance_group=state.group("intra-dp-cp"),
        inter_instance_group=state.group("inter-dp-cp"),
        expert_dp_group=state.group("edp"),
    )
    if run.seed.data_parallel_random_init:
        # Each replica drew its own weights; the original then copies DP rank 0's to all.
        ddp.broadcast_params()
    return ddp


def wrap_fully_sharded(
    model: torch.nn.Module, run: RunConfig, state: ParallelState
) -> DataParallel:
    """``--use-torch-fsdp2`` or ``--use-megatron-fsdp``: the model sharded over the data x
    context group as the strategy says, with its optimizer (``.optimizer``)."""
    d = run.distributed
    strategy = strategy_from_flags(
        use_torch_fsdp2=d.use_torch_fsdp2,
        use_megatron_fsdp=d.use_megatron_fsdp,
        data_parallel_sharding_strategy=d.data_parallel_sharding_strategy,
        use_distributed_optimizer=d.use_distributed_optimizer,
    )
    return wrap_sharded(
        model,
        strategy,
        state.group("dp-cp"),
        optimizer_config=run.optimizer,
        learning_rate=run.learning_rate,
        precision=run.precision,
        ddp_config=ddp_config(run, model),
        reshard_after_forward=d.torch_fsdp2_reshard_after_forward,
        grad_stats_group=state.group("tp-pp"),
        dp_stats_group=dist.group.WORLD if dist.is_initialized() else None,
        kind=run.parallel.optimizer,
        log_num_zeros_in_grad=run.logging.log_num_zeros_in_grad,
        tp_rank=state.tp_rank,
    )


def grad_stats_group(run: RunConfig, state: ParallelState) -> Any:
    """Where gradient norms, zero counts and overflow flags are summed: the model-parallel
    group, or every rank when the distributed optimizer spreads the gradient over DP too."""
    if run.distributed.use_distributed_optimizer and dist.is_initialized():
        if run.distributed.num_distributed_optimizer_instances > 1:
            return state.group("intra-dist-opt")  # each instance holds the whole gradient
        return dist.group.WORLD
    return state.group("tp-pp")


def expert_grad_stats_group(run: RunConfig, state: ParallelState) -> Any:
    """Where the routed experts' gradient statistics are summed with the plain optimizer: the
    expert model-parallel group (the distributed optimizer's whole-world sum covers them)."""
    if run.model.num_experts is None or run.distributed.use_distributed_optimizer:
        return None
    return state.group("etp-ep-pp")


@dataclass(frozen=True)
class GradFinalizer:
    """The step's gradient bookkeeping after the last micro-batch's backward."""

    ddp: Any
    tp_group: Any
    partial_params: tuple[torch.nn.Parameter, ...]
    embedding_group: Any = None
    tied_embeddings: tuple[torch.nn.Parameter, ...] = ()

    @classmethod
    def build(cls, model: torch.nn.Module, ddp: Any, state: ParallelState) -> GradFinalizer:
        tp_group = state.group("tp")
        partial: tuple[torch.nn.Parameter, ...] = ()
        if group_size(tp_group) > 1:
            partial = tuple(p for p in model.parameters() if has_tensor_parallel_partial_grad(p))
        tied = tuple(p for p in model.parameters() if getattr(p, "shared_embedding", False))
        embedding_group = state.group("embd") if tied else None
        return cls(ddp, tp_group, partial, embedding_group, tied)

    def finish(self) -> None:
        """Reduce the gradients over the data x context group, sum the gradients each
        tensor-parallel rank holds only in part (norms on sequence shards, q/k norms), and
        sum the tied word embeddings' gradients over the first and last pipeline stages (the
        original's finalize_model_grads)."""
        if self.ddp is not None:
            self.ddp.finish_grad_sync()
        for param in self.partial_params:
            _sum_grad(param, self.tp_group)
        for param in self.tied_embeddings:
            _sum_grad(param, self.embedding_group)


def _sum_grad(param: torch.nn.Parameter, group: Any) -> None:
    grad = getattr(param, "main_grad", None)
    grad = param.grad if grad is None else grad
    if grad is not None:
        # Under FSDP2 the gradient is a DTensor sharded over data parallelism: the ranks of
        # `group` hold the same slice of it, so their local shards are summed.
        local = grad.to_local() if hasattr(grad, "to_local") else grad
        all_reduce_(local, group, "sum")
