"""Send activations forward and gradients backward between adjacent pipeline stages.

One call, ``PipelineP2P.exchange``, posts up to four operations as one batch
(``torch.distributed.batch_isend_irecv``) and waits for all of them, as the original's
``batch_p2p_comm`` does. Why it cannot deadlock or mix up tensors:

- All operations of a batch are posted before any is waited on, so two ranks that send to each
  other in the same batch both make progress (NCCL runs a batch as one group; gloo's sends are
  asynchronous).
- Activations and gradients travel with different tags, and within a batch the activation
  operations are posted before the gradient ones on both sides. With two ranks and the
  interleaved schedule, rank 0 sends both kinds to rank 1 (its next stage and, wrapping around,
  its previous one); gloo pairs messages per tag, NCCL (which ignores tags) pairs them in post
  order, and both orders agree.
- The schedules (``plan.py``) pair every send with a receive the peer posts in a batch it waits
  on; the tests replay every rank's plan under that rule.

Shapes are known in advance (``[seq / cp (/ tp with sequence parallel), micro_batch, hidden]``),
unless ``variable_seq_lengths``: then each exchange first swaps the shapes in a batch of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.distributed as dist

from gpt_parallel.comm.groups import ProcessGroup, group_rank, group_size, report

ACTIVATION_TAG = 7001
GRADIENT_TAG = 7002
ACTIVATION_SHAPE_TAG = 7003
GRADIENT_SHAPE_TAG = 7004


class Received(NamedTuple):
    """What one exchange brought: from the previous stage (an activation) and from the next
    (a gradient), ``None`` where nothing was asked for."""

    prev: torch.Tensor | None
    next: torch.Tensor | None


@dataclass(frozen=True)
class PipelineP2P:
    """This rank's links to its neighbours in the pipeline group ``group``.

    ``wrap_around``: the interleaved schedule, where the last rank's next stage is rank 0 (the
    next virtual chunk) and rank 0's previous is the last rank. Without it, the first stage
    has no previous and the last no next, and using them raises.
    """

    group: ProcessGroup
    tensor_shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    wrap_around: bool = False
    variable_seq_lengths: bool = False

    def __post_init__(self) -> None:
        if group_size(self.group) < 2:
            raise ValueError(
                "pipeline point-to-point needs --pipeline-model-parallel-size > 1, got "
                f"{group_size(self.group)}"
            )

    @property
    def rank(self) -> int:
        return group_rank(self.group)

    @property
    def size(self) -> int:
        return group_size(self.group)

    @property
    def prev_rank(self) -> int | None:
        """Global rank of the previous stage, ``None`` for the first stage without wrap-around."""
        if self.rank == 0 and not self.wrap_around:
            return None
        return dist.get_global_rank(self.group, (self.rank - 1) % self.size)

    @property
    def next_rank(self) -> int | None:
        """Global rank of the next stage, ``None`` for the last stage without wrap-around."""
        if self.rank == self.size - 1 and not self.wrap_around:
            return None
        return dist.get_global_rank(self.group, (self.rank + 1) % self.size)

    def exchange(
        self,
        *,
        send_next: torch.Tensor | None = None,
        send_prev: torch.Tensor | None = None,
        recv_prev: bool = False,
        recv_next: bool = False,
        requires_grad: bool = False,
    ) -> Received:
        """Send an activation to the next stage and/or a gradient to the previous one, receive
        an activation from the previous stage and/or a gradient from the next; wait for all.

        Received activations are fresh leaves with ``requires_grad`` set when asked, so their
        ``.grad`` can be sent back after the backward pass.
        """
        self._check_peer(self.next_rank, send_next is not None or recv_next, "next")
        self._check_peer(self.prev_rank, send_prev is not None or recv_prev, "previous")
        send_next = self._outgoing(send_next, "activation")
        send_prev = self._outgoing(send_prev, "gradient")
        prev_shape = next_shape = self.tensor_shape
        if self.variable_seq_lengths:
            prev_shape, next_shape = self._exchange_shapes(
                send_next, send_prev, recv_prev, recv_next
            )
        into_prev = self._buffer(prev_shape) if recv_prev else None
        into_next = self._buffer(next_shape) if recv_next else None
        _run(self._ops(send_next, into_prev, send_prev, into_next, (ACTIVATION_TAG, GRADIENT_TAG)))
        if into_prev is not None and requires_grad:
            into_prev.requires_grad_()  # after the receive: a leaf that needs grad is not written
        return Received(into_prev, into_next)

    def _check_peer(self, peer: int | None, wanted: bool, side: str) -> None:
        if wanted and peer is None:
            raise ValueError(f"pipeline rank {self.rank} has no {side} stage to exchange with")

    def _outgoing(self, tensor: torch.Tensor | None, what: str) -> torch.Tensor | None:
        if tensor is None:
            return None
        if not self.variable_seq_lengths and tuple(tensor.shape) != tuple(self.tensor_shape):
            raise ValueError(
                f"pipeline {what} of shape {tuple(tensor.shape)} differs from the agreed "
                f"{tuple(self.tensor_shape)}; set variable_seq_lengths (--variable-seq-lengths) "
                "or fix the tensor shape"
            )
        if tensor.dtype != self.dtype:
            raise ValueError(
                f"pipeline {what} has dtype {tensor.dtype}, the pipeline dtype is {self.dtype}"
            )
        report("send", tensor.numel(), tensor.element_size(), self.group)
        return tensor.detach().contiguous()

    def _buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.empty(shape, dtype=self.dtype, device=self.device)

    def _exchange_shapes(
        self,
        send_next: torch.Tensor | None,
        send_prev: torch.Tensor | None,
        recv_prev: bool,
        recv_next: bool,
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        ndim = len(self.tensor_shape)

        def shape_of(tensor: torch.Tensor | None) -> torch.Tensor | None:
            if tensor is None:
                return None
            return torch.tensor(tensor.shape, dtype=torch.int64, device=self.device)

        def empty(wanted: bool) -> torch.Tensor | None:
            return torch.empty(ndim, dtype=torch.int64, device=self.device) if wanted else None

        into_prev, into_next = empty(recv_prev), empty(recv_next)
        ops = self._ops(
            shape_of(send_next),
            into_prev,
            shape_of(send_prev),
            into_next,
            (ACTIVATION_SHAPE_TAG, GRADIENT_SHAPE_TAG),
        )
        _run(ops)
        prev = tuple(into_prev.tolist()) if into_prev is not None else self.tensor_shape
        nxt = tuple(into_next.tolist()) if into_next is not None else self.tensor_shape
        return prev, nxt

    def _ops(
        self,
        send_next: torch.Tensor | None,
        into_prev: torch.Tensor | None,
        send_prev: torch.Tensor | None,
        into_next: torch.Tensor | None,
        tags: tuple[int, int],
    ) -> list[dist.P2POp]:
        """Activation operations first, then gradient ones (see the module doc)."""
        forward_tag, backward_tag = tags
        ops = []
        if send_next is not None:
            ops.append(dist.P2POp(dist.isend, send_next, self.next_rank, self.group, forward_tag))
        if into_prev is not None:
            ops.append(dist.P2POp(dist.irecv, into_prev, self.prev_rank, self.group, forward_tag))
        if send_prev is not None:
            ops.append(dist.P2POp(dist.isend, send_prev, self.prev_rank, self.group, backward_tag))
        if into_next is not None:
            ops.append(dist.P2POp(dist.irecv, into_next, self.next_rank, self.group, backward_tag))
        return ops


def _run(ops: list[dist.P2POp]) -> None:
    """Post the batch, then wait for every operation in it."""
    if not ops:
        return
    for request in dist.batch_isend_irecv(ops):
        request.wait()
