"""The context-parallel communication types and the checks that make a configuration valid.

Each check raises one ``ValueError`` line naming the flag, so a bad configuration fails before
any collective is issued (a wrong shape inside a collective would hang or give garbage).
"""

from __future__ import annotations

from typing import Literal

from gpt_parallel.context_parallel.chunking import check_sequence_divisible

CpCommType = Literal["p2p", "all_gather", "a2a", "a2a+p2p"]
CP_COMM_TYPES: tuple[CpCommType, ...] = ("p2p", "all_gather", "a2a", "a2a+p2p")
# The original's help text says "allgather"; Transformer Engine's name is "all_gather".
_ALIASES = {"allgather": "all_gather"}


def normalize_cp_comm_type(name: str) -> CpCommType:
    """The canonical name of a ``--cp-comm-type`` value (``allgather`` -> ``all_gather``)."""
    canonical = _ALIASES.get(name, name)
    if canonical not in CP_COMM_TYPES:
        raise ValueError(
            f"--cp-comm-type {name!r} is not one of p2p, a2a, allgather (all_gather), a2a+p2p"
        )
    return canonical  # type: ignore[return-value]


def check_context_parallel_attention(
    comm_type: str,
    cp_size: int,
    num_heads: int,
    num_kv_heads: int,
    seq_len: int,
    hierarchical_sizes: tuple[int, ...] | list[int] | None = None,
) -> CpCommType:
    """Validate one attention configuration; returns the canonical comm type.

    ``num_heads``/``num_kv_heads`` are the heads this rank holds (after tensor parallelism) and
    ``seq_len`` the full (not yet split) sequence length.
    """
    kind = normalize_cp_comm_type(comm_type)
    check_sequence_divisible(seq_len, cp_size)
    if num_heads % num_kv_heads != 0:
        raise ValueError(
            f"--num-attention-heads {num_heads} must be divisible by --num-query-groups {num_kv_heads}"
        )
    a2a_size = cp_size
    if kind == "a2a+p2p":
        a2a_size = check_hierarchical_sizes(cp_size, hierarchical_sizes)[0]
    if kind in ("a2a", "a2a+p2p"):
        if num_heads % a2a_size != 0:
            raise ValueError(
                f"--num-attention-heads {num_heads} (per tensor-parallel rank) must be divisible by "
                f"the all-to-all context-parallel size {a2a_size} for --cp-comm-type {kind}"
            )
        if num_kv_heads % a2a_size != 0:
            raise ValueError(
                f"--num-query-groups {num_kv_heads} (per tensor-parallel rank) must be divisible by "
                f"the all-to-all context-parallel size {a2a_size} for --cp-comm-type {kind}"
            )
    return kind


def check_hierarchical_sizes(
    cp_size: int, sizes: tuple[int, ...] | list[int] | None
) -> tuple[int, int]:
    """``(a2a_size, p2p_size)`` from ``--hierarchical-context-parallel-sizes`` for ``a2a+p2p``."""
    if sizes is None or len(sizes) != 2:
        raise ValueError(
            "--cp-comm-type a2a+p2p needs --hierarchical-context-parallel-sizes with two sizes "
            f"[a2a, p2p], got {sizes}"
        )
    a2a_size, p2p_size = int(sizes[0]), int(sizes[1])
    if a2a_size * p2p_size != cp_size:
        raise ValueError(
            f"--hierarchical-context-parallel-sizes {a2a_size} {p2p_size} must multiply to "
            f"--context-parallel-size {cp_size}"
        )
    return a2a_size, p2p_size


def hierarchical_cp_rank_lists(
    cp_ranks: list[int], sizes: tuple[int, ...] | list[int]
) -> tuple[list[list[int]], list[list[int]]]:
    """The global ranks of the inner (a2a) and outer (p2p) groups of one CP group.

    As in the original: every ``a2a_size`` adjacent CP ranks form an inner group; CP ranks with
    the same index inside their inner group form an outer group. So CP rank
    ``c = p2p_rank * a2a_size + a2a_rank``, which the a2a+p2p attention relies on.
    """
    a2a_size, p2p_size = check_hierarchical_sizes(len(cp_ranks), sizes)
    inner = [cp_ranks[p * a2a_size : (p + 1) * a2a_size] for p in range(p2p_size)]
    outer = [cp_ranks[a::a2a_size] for a in range(a2a_size)]
    return inner, outer
