"""When one pipeline rank exchanges tensors with its neighbours, between its passes (no torch).

A plan is the rank's order (``order.py``) with an ``Exchange`` between passes: one batch of
sends and receives posted together and waited on together. The batches are the original's
(Megatron core v0.14, ``batch_p2p_comm`` without overlap): the same pairs of send and receive in
the same iterations, so that every send meets its receive in a batch the peer is waiting on.
That pairing is what keeps NCCL, whose sends wait for the peer's receive, from deadlocking;
``tests/gpt_parallel/test_pipeline_schedules.py`` replays every rank's plan under that rule.

Every tensor is named by the ``(chunk, microbatch)`` of the pass on *this* rank that produces or
consumes it, so the engine can file what it receives by name instead of by arrival order:

- ``send_next``: the output of this rank's forward ``(chunk, mb)``;
- ``recv_prev``: the input of this rank's forward ``(chunk, mb)``;
- ``send_prev``: the input gradient of this rank's backward ``(chunk, mb)``;
- ``recv_next``: the output gradient for this rank's backward ``(chunk, mb)``.

Virtual stage ``chunk * pp + rank`` holds the layers, so the first rank's chunk ``c`` reads from
the last rank's chunk ``c - 1`` (the "next" of the last rank is rank 0) and gradients go back
the same way.
"""

from __future__ import annotations

from typing import NamedTuple

from gpt_parallel.pipeline.order import (
    Op,
    backward_slot,
    check_interleaved,
    forward_slot,
    schedule_table,
    warmup_microbatches_1f1b,
    warmup_microbatches_interleaved,
)

Key = tuple[int, int]  # (chunk, microbatch)


class Exchange(NamedTuple):
    """One batch of point-to-point operations; ``None`` where there is nothing to do."""

    send_next: Key | None = None
    recv_prev: Key | None = None
    send_prev: Key | None = None
    recv_next: Key | None = None

    def is_empty(self) -> bool:
        return all(item is None for item in self)


Step = Op | Exchange


def _append(plan: list[Step], step: Step) -> None:
    if isinstance(step, Exchange) and step.is_empty():
        return
    plan.append(step)


def plan_1f1b(
    pp_rank: int, pp_size: int, num_microbatches: int, forward_only: bool = False
) -> list[Step]:
    """The non-interleaved schedule with its exchanges (chunk always 0)."""
    first, last = pp_rank == 0, pp_rank == pp_size - 1
    warmup = warmup_microbatches_1f1b(pp_rank, pp_size, num_microbatches)
    steady = num_microbatches - warmup

    def inp(m: int) -> Key | None:
        return None if first else (0, m)

    def out(m: int) -> Key | None:
        return None if last else (0, m)

    plan: list[Step] = []
    for m in range(warmup):
        _append(plan, Exchange(recv_prev=inp(m)))
        plan.append(Op("F", 0, m))
        _append(plan, Exchange(send_next=out(m)))
    if steady:
        _append(plan, Exchange(recv_prev=inp(warmup)))
    for i in range(steady):
        m = warmup + i
        final = i == steady - 1
        plan.append(Op("F", 0, m))
        if forward_only:
            _append(plan, Exchange(send_next=out(m)))
            if not final:
                _append(plan, Exchange(recv_prev=inp(m + 1)))
            continue
        _append(plan, Exchange(send_next=out(m), recv_next=out(i)))
        plan.append(Op("B", 0, i))
        _append(plan, Exchange(send_prev=inp(i), recv_prev=None if final else inp(m + 1)))
    if not forward_only:
        for m in range(steady, num_microbatches):
            _append(plan, Exchange(recv_next=out(m)))
            plan.append(Op("B", 0, m))
            _append(plan, Exchange(send_prev=inp(m)))
    return plan


def plan_interleaved(
    pp_rank: int,
    pp_size: int,
    num_model_chunks: int,
    num_microbatches: int,
    group_size: int | None = None,
    forward_only: bool = False,
) -> list[Step]:
    """The interleaved schedule with its exchanges.

    What arrives after slot ``k``: on every rank but the first, the input of this rank's next
    forward (slot ``k + 1``). The first rank reads from the last one, which is ``pp - 1`` slots
    behind, so it receives the output of the last rank's slot ``k - (pp - 1)``, unless that slot
    is the last chunk (which computes the loss and sends nothing). Backward mirrors this with
    the last rank reading from the first.
    """
    group = check_interleaved(pp_size, num_model_chunks, num_microbatches, group_size)
    chunks, r = num_model_chunks, pp_rank
    table = schedule_table(num_microbatches, chunks, group)
    total = len(table)
    first, last = r == 0, r == pp_size - 1
    warmup = (
        total
        if forward_only
        else warmup_microbatches_interleaved(r, pp_size, chunks, num_microbatches, group)
    )
    steady = total - warmup

    def fwd(k: int) -> Key:
        return forward_slot(table, k)

    def bwd(k: int) -> Key:
        return backward_slot(table, chunks, k)

    def sent_forward(k: int) -> Key | None:
        chunk, mb = fwd(k)
        return None if last and chunk == chunks - 1 else (chunk, mb)

    def sent_backward(k: int) -> Key | None:
        chunk, mb = bwd(k)
        return None if first and chunk == 0 else (chunk, mb)

    def received_forward(k: int) -> Key | None:
        """The forward input that arrives in the exchange after forward slot ``k``."""
        if k + 1 >= total:
            return None
        if not first:
            return fwd(k + 1)
        if k < pp_size - 1:
            return None
        chunk, mb = fwd(k - (pp_size - 1))
        return None if chunk == chunks - 1 else (chunk + 1, mb)

    def received_backward(k: int) -> Key | None:
        """The output gradient that arrives in the exchange after backward slot ``k``."""
        if k + 1 >= total:
            return None
        if not last:
            return bwd(k + 1)
        if k < pp_size - 1:
            return None
        chunk, mb = bwd(k - (pp_size - 1))
        return None if chunk == 0 else (chunk - 1, mb)

    plan: list[Step] = []
    _append(plan, Exchange(recv_prev=None if first else fwd(0)))
    for k in range(warmup):
        plan.append(Op("F", *fwd(k)))
        opens_steady = k == warmup - 1 and not forward_only and steady > 0
        first_grad = bwd(0) if opens_steady and not last else None
        _append(
            plan,
            Exchange(
                send_next=sent_forward(k), recv_prev=received_forward(k), recv_next=first_grad
            ),
        )
    for k in range(steady):
        plan.append(Op("F", *fwd(warmup + k)))
        plan.append(Op("B", *bwd(k)))
        exchange = Exchange(
            send_next=sent_forward(warmup + k),
            recv_prev=received_forward(warmup + k),
            send_prev=sent_backward(k),
            recv_next=received_backward(k),
        )
        _append(plan, exchange)
    if not forward_only:
        if steady == 0:
            _append(plan, Exchange(recv_next=None if last else bwd(0)))
        for k in range(steady, total):
            plan.append(Op("B", *bwd(k)))
            _append(plan, Exchange(send_prev=sent_backward(k), recv_next=received_backward(k)))
    return plan


def source_key(pp_rank: int, pp_size: int, direction: str, key: Key) -> tuple[int, Key]:
    """Who sends what this rank receives as ``key``: ``(peer rank, the peer's own key)``.

    ``direction`` is ``"prev"`` (a forward input) or ``"next"`` (an output gradient).
    """
    chunk, mb = key
    if direction == "prev":
        peer = (pp_rank - 1) % pp_size
        return peer, ((chunk - 1, mb) if pp_rank == 0 else key)
    peer = (pp_rank + 1) % pp_size
    return peer, ((chunk + 1, mb) if pp_rank == pp_size - 1 else key)


def passes(plan: list[Step]) -> list[Op]:
    """The order inside a plan (the passes without the exchanges)."""
    return [step for step in plan if isinstance(step, Op)]
