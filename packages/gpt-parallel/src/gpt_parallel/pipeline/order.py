"""Which forward and backward passes one pipeline rank runs, and in which order (no torch).

The rules are the original's (Megatron core v0.14 ``schedules.py``), written as pure functions
so that tests can read the order off a table and the engine can run exactly that order:

- 1F1B without interleaving: rank ``r`` of ``pp`` runs ``min(pp - r - 1, M)`` warm-up forwards,
  then alternates one forward and one backward, then runs the remaining backwards.
- Interleaved 1F1B (``C`` model chunks per rank, i.e. virtual stages): micro-batches go through
  the chunks in groups of ``G`` (``--microbatch-group-size-per-virtual-pipeline-stage``, ``pp``
  by default): ``G`` micro-batches through chunk 0, the same ``G`` through chunk 1, ... then the
  next group. Backward visits the same table with the chunks reversed. Warm-up is
  ``2 * (pp - r - 1) + (C - 1) * G`` forwards (all of them if that is more than ``M * C``).
- Forward only (evaluation): every forward in the same order, no backward.

An op is ``("F" | "B", model_chunk, microbatch)``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class Op(NamedTuple):
    """One forward (``"F"``) or backward (``"B"``) pass of one micro-batch through one chunk."""

    kind: Literal["F", "B"]
    chunk: int
    microbatch: int


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")


def _check_rank(pp_rank: int, pp_size: int) -> None:
    _check_positive("--pipeline-model-parallel-size", pp_size)
    if not 0 <= pp_rank < pp_size:
        raise ValueError(f"pipeline rank {pp_rank} is outside [0, {pp_size})")


def warmup_microbatches_1f1b(pp_rank: int, pp_size: int, num_microbatches: int) -> int:
    """Forwards rank ``pp_rank`` runs before its first backward (non-interleaved 1F1B)."""
    _check_rank(pp_rank, pp_size)
    return min(pp_size - pp_rank - 1, num_microbatches)


def order_1f1b(
    pp_rank: int, pp_size: int, num_microbatches: int, forward_only: bool = False
) -> list[Op]:
    """The non-interleaved 1F1B order of one rank (model chunk always 0)."""
    _check_positive("number of micro-batches", num_microbatches)
    if forward_only:
        return [Op("F", 0, m) for m in range(num_microbatches)]
    warmup = warmup_microbatches_1f1b(pp_rank, pp_size, num_microbatches)
    ops = [Op("F", 0, m) for m in range(warmup)]
    for i in range(num_microbatches - warmup):
        ops += [Op("F", 0, warmup + i), Op("B", 0, i)]
    ops += [Op("B", 0, m) for m in range(num_microbatches - warmup, num_microbatches)]
    return ops


def check_interleaved(
    pp_size: int, num_model_chunks: int, num_microbatches: int, group_size: int | None = None
) -> int:
    """Check an interleaved configuration as the original does; return the group size ``G``.

    The original requires ``pp <= G <= M`` and the last group (``M % G`` micro-batches) to be
    empty or at least ``pp`` long, since a shorter group leaves the pipeline waiting on itself.
    It also needs more than one pipeline rank and more than one chunk.
    """
    _check_positive("--pipeline-model-parallel-size", pp_size)
    _check_positive("number of micro-batches", num_microbatches)
    if pp_size < 2:
        raise ValueError(
            "the interleaved schedule needs --pipeline-model-parallel-size > 1, got "
            f"{pp_size}; unset --num-virtual-stages-per-pipeline-rank"
        )
    if num_model_chunks < 2:
        raise ValueError(
            "the interleaved schedule needs at least 2 model chunks per rank "
            f"(--num-virtual-stages-per-pipeline-rank), got {num_model_chunks}"
        )
    group = pp_size if group_size is None else group_size
    if not pp_size <= group <= num_microbatches:
        raise ValueError(
            f"--microbatch-group-size-per-virtual-pipeline-stage must lie in "
            f"[pipeline size {pp_size}, micro-batches {num_microbatches}], got {group}"
        )
    last_group = num_microbatches % group
    if 0 < last_group < pp_size:
        raise ValueError(
            f"{num_microbatches} micro-batches in groups of {group} leave a last group of "
            f"{last_group} < pipeline size {pp_size}; use a number of micro-batches whose "
            f"remainder modulo --microbatch-group-size-per-virtual-pipeline-stage is 0 or >= "
            f"{pp_size}"
        )
    return group


def schedule_table(
    num_microbatches: int, num_model_chunks: int, group_size: int
) -> list[tuple[int, int]]:
    """``(microbatch, chunk)`` of each forward slot ``k`` of an interleaved rank.

    Groups of ``group_size`` micro-batches visit chunk 0, 1, ... in turn; a last group shorter
    than two groups' worth takes whatever micro-batches remain.
    """
    table: list[tuple[int, int]] = []
    for start in range(0, num_microbatches, group_size):
        end = num_microbatches if start + group_size >= num_microbatches else start + group_size
        table += [(m, c) for c in range(num_model_chunks) for m in range(start, end)]
    return table


def forward_slot(table: list[tuple[int, int]], k: int) -> tuple[int, int]:
    """``(chunk, microbatch)`` of the ``k``-th forward of an interleaved rank."""
    microbatch, chunk = table[k]
    return chunk, microbatch


def backward_slot(table: list[tuple[int, int]], num_model_chunks: int, k: int) -> tuple[int, int]:
    """``(chunk, microbatch)`` of the ``k``-th backward: the same slot, chunks reversed."""
    microbatch, chunk = table[k]
    return num_model_chunks - 1 - chunk, microbatch


def warmup_microbatches_interleaved(
    pp_rank: int, pp_size: int, num_model_chunks: int, num_microbatches: int, group_size: int
) -> int:
    """Forwards an interleaved rank runs before its first backward (capped at all of them)."""
    _check_rank(pp_rank, pp_size)
    warmup = 2 * (pp_size - pp_rank - 1) + (num_model_chunks - 1) * group_size
    return min(warmup, num_microbatches * num_model_chunks)


def order_interleaved(
    pp_rank: int,
    pp_size: int,
    num_model_chunks: int,
    num_microbatches: int,
    group_size: int | None = None,
    forward_only: bool = False,
) -> list[Op]:
    """The interleaved 1F1B order of one rank; raises on a configuration the original refuses."""
    group = check_interleaved(pp_size, num_model_chunks, num_microbatches, group_size)
    _check_rank(pp_rank, pp_size)
    table = schedule_table(num_microbatches, num_model_chunks, group)
    total = len(table)
    forwards = [Op("F", *forward_slot(table, k)) for k in range(total)]
    if forward_only:
        return forwards
    backwards = [Op("B", *backward_slot(table, num_model_chunks, k)) for k in range(total)]
    warmup = warmup_microbatches_interleaved(
        pp_rank, pp_size, num_model_chunks, num_microbatches, group
    )
    ops = forwards[:warmup]
    for k in range(total - warmup):
        ops += [forwards[warmup + k], backwards[k]]
    return ops + backwards[total - warmup :]


def peak_in_flight(ops: list[Op]) -> int:
    """Most micro-batch passes forwarded but not yet backwarded at any point (activation memory).

    Meaningful for training orders; a forward-only order keeps nothing alive, so there it
    is simply the number of forwards.
    """
    live = peak = 0
    for op in ops:
        live += 1 if op.kind == "F" else -1
        peak = max(peak, live)
    return peak
