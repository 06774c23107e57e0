"""The data-parallel wrapper's settings (the original's ``DistributedDataParallelConfig``).

A small frozen value the lead builds once from the parallel and precision configs (see
``DDPConfig.bucket_size_from`` for ``--ddp-num-buckets``); the DDP classes never read flags.
"""

from __future__ import annotations

from dataclasses import dataclass

# The original's default bucket: max(40M, 1M * dp) elements (DistributedDataParallel.__init__).
DEFAULT_MIN_BUCKET_NUMEL = 40_000_000
DEFAULT_BUCKET_NUMEL_PER_DP_RANK = 1_000_000


@dataclass(frozen=True, kw_only=True)
class DDPConfig:
    """How gradients are buffered, bucketed and reduced over the data-parallel group."""

    grad_reduce_in_fp32: bool = False
    """fp32 gradient buffer (``--accumulate-allreduce-grads-in-fp32``); else the params' dtype."""
    overlap_grad_reduce: bool = False
    """Launch each bucket's collective during backward (``--overlap-grad-reduce``)."""
    overlap_param_gather: bool = False
    """Gather updated params per bucket before its first use in forward (``--overlap-param-gather``)."""
    use_distributed_optimizer: bool = False
    """Reduce-scatter gradients and keep a param buffer for the all-gather (``--use-distributed-optimizer``)."""
    bucket_size: int | None = None
    """Elements per bucket (``--ddp-bucket-size``); None: max(40M, 1M * dp). Ignored (one bucket)
    without ``overlap_grad_reduce``, as in the original."""
    average_in_collective: bool = False
    """Average in the collective instead of dividing by dp first (``--ddp-average-in-collective``)."""
    pad_buckets_for_high_nccl_busbw: bool = False
    """With the distributed optimizer, pad buckets to a multiple of 2^16 too."""
    check_for_nan_in_grad: bool = False
    """Fail before the reduction when a bucket holds a NaN or inf (``--check-for-nan-in-loss-and-grad``)."""
    num_distributed_optimizer_instances: int = 1
    """Shard the distributed optimizer over dp*cp/N ranks and all-reduce the shards across the
    N instances (``--num-distributed-optimizer-instances``); the DDP then needs the instance
    groups (``ParallelState.group("intra-dp-cp")`` and ``"inter-dp-cp"``)."""
    overlap_param_gather_with_optimizer_step: bool = False
    """The distributed optimizer launches every bucket's param all-gather at the end of its step
    instead of the forward pre-hooks launching them (``--overlap-param-gather-with-optimizer-step``);
    bucketing is off, as in the original (one bucket per buffer)."""
    gradient_reduce_div_fusion: bool = True
    """Fold the 1/dp scaling into the reduction (NCCL's pre-multiplied sum) where the backend
    has it, instead of a separate multiply first (``--no-gradient-reduce-div-fusion`` turns it
    off); see ``ddp.reduce_op``."""

    def __post_init__(self) -> None:
        if self.bucket_size is not None and self.bucket_size <= 0:
            raise ValueError(f"--ddp-bucket-size must be positive, got {self.bucket_size}")
        if self.overlap_param_gather and not self.use_distributed_optimizer:
            raise ValueError("--overlap-param-gather requires --use-distributed-optimizer")
        instances = self.num_distributed_optimizer_instances
        if not isinstance(instances, int) or instances < 1:
            raise ValueError(
                f"--num-distributed-optimizer-instances must be a positive integer, got {instances!r}"
            )
        if instances > 1 and not self.use_distributed_optimizer:
            raise ValueError(
                "--num-distributed-optimizer-instances > 1 requires --use-distributed-optimizer"
            )
        if self.overlap_param_gather_with_optimizer_step and not self.overlap_param_gather:
            raise ValueError(
                "--overlap-param-gather-with-optimizer-step requires --overlap-param-gather"
            )

    @staticmethod
    def bucket_size_from(
        bucket_size: int | None, num_buckets: int | None, num_parameters: int
    ) -> int | None:
        """``--ddp-bucket-size`` or, from ``--ddp-num-buckets``, ``num_parameters // num_buckets``.

        The original's ``get_model`` rule: the two flags exclude each other and the count uses
        every parameter of every model chunk on this rank.
        """
        if num_buckets is None:
            return bucket_size
        if bucket_size is not None:
            raise ValueError("Cannot specify both --ddp-num-buckets and --ddp-bucket-size")
        if num_buckets <= 0:
            raise ValueError(f"--ddp-num-buckets must be greater than 0, got {num_buckets}")
        return num_parameters // num_buckets

    def effective_bucket_size(self, dp_size: int, disable_bucketing: bool = False) -> int | None:
        """Elements per bucket for this run, None meaning one bucket per buffer.

        Without ``overlap_grad_reduce`` nothing is gained by splitting (every bucket is reduced
        after backward anyway), so the original uses one bucket; ``disable_bucketing`` is what it
        sets for model chunks after the first, whose reduction is off the critical path, and for
        every chunk with ``overlap_param_gather_with_optimizer_step``.
        """
        if (
            not self.overlap_grad_reduce
            or disable_bucketing
            or self.overlap_param_gather_with_optimizer_step
        ):
            return None
        if self.bucket_size is not None:
            return self.bucket_size
        return max(DEFAULT_MIN_BUCKET_NUMEL, DEFAULT_BUCKET_NUMEL_PER_DP_RANK * dp_size)
