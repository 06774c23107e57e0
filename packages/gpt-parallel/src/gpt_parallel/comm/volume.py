"""Counting the bytes each rank sends in the collectives of ``gpt_parallel.comm``.

Why: parallelism is paid for in communication, and claims such as "sequence parallelism moves
no more bytes than plain tensor parallelism" (an all-reduce is a reduce-scatter plus an
all-gather) or "the distributed optimizer moves as many bytes as DDP" should be measured facts,
not comments. Every collective in ``gpt_parallel.comm`` reports itself here; ``count_bytes()``
installs a recorder for the length of a ``with`` block and removes it on exit, so nothing is
recorded (and nothing leaks between uses) outside one.

What is counted: for each collective, the bytes THIS rank puts on the wire, simulated chunk by
chunk from the actual tensor (``ring_bytes_sent``) under the ring algorithm for all-reduce,
all-gather and reduce-scatter, directly for all-to-all and point-to-point sends. The closed
forms NCCL's bandwidth figures use are ``theoretical_bytes``: all-reduce ``2(n-1)/n * S``,
all-gather, reduce-scatter and all-to-all ``(n-1)/n * S``, a send ``S``, with ``S`` the bytes
of the full tensor (the all-reduced tensor, the all-gather's output, the reduce-scatter's
input, the all-to-all's input, the sent tensor). The two agree exactly when ``S`` splits evenly
over the ranks; otherwise their mean over the ranks agrees. Padding is part of the tensor, so
it counts as sent. A collective over one rank sends nothing and is not recorded.

Standard library only, so volumes can be planned without torch. Counting runs in eager mode;
inside a ``torch.compile`` region the recorder would only see the trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send")


@dataclass(frozen=True)
class CommRecord:
    """One collective as seen from one rank.

    ``size_bytes`` is the full tensor (see the module doc); ``sent_bytes`` is what this rank
    sends.
    """

    op: str
    size_bytes: int
    group_size: int
    sent_bytes: int


@dataclass
class CommRecorder:
    """The collectives run while it was installed, in call order."""

    records: list[CommRecord] = field(default_factory=list)

    @property
    def sent_bytes(self) -> int:
        """Total bytes this rank sent."""
        return sum(record.sent_bytes for record in self.records)

    def ops(self) -> list[str]:
        """The op names in call order (for asserting which collectives a step runs)."""
        return [record.op for record in self.records]


# The recorders of the ``count_bytes`` blocks being run, innermost last. A plain list rather
# than a context variable: autograd may run backward on its own threads, which would not see a
# context variable set on the caller's thread.
_installed: list[CommRecorder] = []


@contextmanager
def count_bytes() -> Iterator[CommRecorder]:
    """Record every collective (forward and backward) run inside the block.

    Nested blocks each record what runs inside them.
    """
    recorder = CommRecorder()
    _installed.append(recorder)
    try:
        yield recorder
    finally:
        _installed.remove(recorder)


def is_recording() -> bool:
    """Whether a ``count_bytes`` block is open (lets callers skip the rank lookups otherwise)."""
    return bool(_installed)


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ValueError(f"unknown collective {op!r}; expected one of {', '.join(OPS)}")


def theoretical_bytes(op: str, size_bytes: int, group_size: int) -> float:
    """Bytes one rank sends in ``op`` over ``group_size`` ranks on a ``size_bytes`` tensor."""
    _check_op(op)
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if op == "send":
        return float(size_bytes) if group_size > 1 else 0.0
    per_phase = (group_size - 1) / group_size * size_bytes
    return 2 * per_phase if op == "all_reduce" else per_phase


def _ring_chunks(numel: int, group_size: int) -> list[int]:
    """Element counts of the ring's chunks (as ``torch.tensor_split`` cuts a flat tensor)."""
    base, extra = divmod(numel, group_size)
    return [base + (1 if i < extra else 0) for i in range(group_size)]


def ring_bytes_sent(op: str, numel: int, element_size: int, group_size: int, rank: int) -> int:
    """Bytes ``rank`` sends in ``op`` on a full tensor of ``numel`` elements.

    The ring runs ``n - 1`` steps per phase. Reduce-scatter: at step ``k`` rank ``r`` sends its
    partial sum of chunk ``r - k - 1`` (so it ends owning chunk ``r``). All-gather: at step
    ``k`` it forwards chunk ``r - k`` (its own first). All-reduce is the two phases in turn.
    All-to-all sends every chunk but its own; a send sends the whole tensor.
    """
    _check_op(op)
    n = group_size
    if op == "send":
        return numel * element_size
    chunks = _ring_chunks(numel, n)
    reduce_scatter = sum(chunks[(rank - k - 1) % n] for k in range(n - 1))
    all_gather = sum(chunks[(rank - k) % n] for k in range(n - 1))
    elements = {
        "reduce_scatter": reduce_scatter,
        "all_gather": all_gather,
        "all_reduce": reduce_scatter + all_gather,
        "all_to_all": numel - chunks[rank],
    }[op]
    return elements * element_size


def record(op: str, numel: int, element_size: int, group_size: int, rank: int) -> None:
    """Report one collective on a full tensor of ``numel`` elements to the installed recorders."""
    if not _installed or group_size == 1:
        return
    entry = CommRecord(
        op=op,
        size_bytes=numel * element_size,
        group_size=group_size,
        sent_bytes=ring_bytes_sent(op, numel, element_size, group_size, rank),
    )
    for recorder in _installed:
        recorder.records.append(entry)
