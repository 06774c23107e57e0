"""Which global ranks form each parallel group: pure arithmetic, no torch.distributed.

The original lays ranks out on a grid whose dimensions are ordered fastest first by an order
string, by default ``tp-cp-ep-dp-pp``: ``rank = tp_rank + tp*(cp_rank + cp*(ep_rank + ep*(dp_rank
+ dp*pp_rank)))``. A group named by a token such as ``tp-pp`` holds the ranks that differ only in
those dimensions. Keeping this separate from process-group creation lets checkpoint tools and
tests compute layouts for any world size without starting processes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_ORDER = "tp-cp-ep-dp-pp"
TP_PP_DP_ORDER = "tp-cp-ep-pp-dp"
DIMENSIONS = ("tp", "cp", "ep", "dp", "pp")


def order_for(use_tp_pp_dp_mapping: bool) -> str:
    """The rank order string the original uses for ``--use-tp-pp-dp-mapping`` on or off."""
    return TP_PP_DP_ORDER if use_tp_pp_dp_mapping else DEFAULT_ORDER


def orthogonal_rank_groups(sizes: Sequence[int], mask: Sequence[bool]) -> list[list[int]]:
    """All groups of ranks that vary only along the dimensions where ``mask`` is true.

    ``sizes`` are the grid dimensions fastest first. Groups are listed with the first unmasked
    dimension varying fastest, and ranks inside a group with the first masked dimension fastest,
    which is the order the original creates its groups in.
    """
    if len(sizes) != len(mask):
        raise ValueError(f"sizes {list(sizes)} and mask {list(mask)} differ in length")
    strides = [1]
    for size in sizes[:-1]:
        strides.append(strides[-1] * size)
    inner = [(s, st) for s, st, m in zip(sizes, strides, mask) if m]
    outer = [(s, st) for s, st, m in zip(sizes, strides, mask) if not m]

    def offsets(dims: list[tuple[int, int]]) -> list[int]:
        # itertools.product varies its last argument fastest, so feed the dims reversed.
        ranges = [range(s) for s, _ in reversed(dims)]
        out = []
        for idx in itertools.product(*ranges):
            out.append(sum(i * st for i, (_, st) in zip(idx, reversed(dims))))
        return out

    return [[base + off for off in offsets(inner)] for base in offsets(outer)]


@dataclass(frozen=True)
class RankGrid:
    """A grid of ranks with named dimensions, ordered fastest first.

    ``sizes`` maps each of tp, cp, ep, dp, pp to its size; ``order`` names them fastest first.
    """

    sizes: Mapping[str, int]
    order: str = DEFAULT_ORDER

    def __post_init__(self) -> None:
        tokens = self.order.split("-")
        if sorted(tokens) != sorted(DIMENSIONS):
            raise ValueError(f"rank order {self.order!r} must name each of {DIMENSIONS} once")
        if set(self.sizes) != set(DIMENSIONS):
            raise ValueError(f"rank grid sizes {dict(self.sizes)} must give each of {DIMENSIONS}")
        for name, size in self.sizes.items():
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"parallel size {name}={size!r} must be a positive integer")

    @property
    def tokens(self) -> list[str]:
        return self.order.split("-")

    @property
    def world_size(self) -> int:
        total = 1
        for size in self.sizes.values():
            total *= size
        return total

    def groups(self, token: str) -> list[list[int]]:
        """Every group for a token such as ``"dp"`` or ``"tp-pp"`` (names in any order)."""
        wanted = token.split("-")
        unknown = [t for t in wanted if t not in DIMENSIONS]
        if unknown:
            raise ValueError(f"unknown parallel dimension(s) {unknown} in group token {token!r}")
        mask = [t in wanted for t in self.tokens]
        return orthogonal_rank_groups([self.sizes[t] for t in self.tokens], mask)

    def group_of(self, token: str, rank: int) -> list[int]:
        """The group for ``token`` that contains ``rank``."""
        for ranks in self.groups(token):
            if rank in ranks:
                return ranks
        raise ValueError(f"rank {rank} is outside a world of {self.world_size} ranks")

    def coordinates(self, rank: int) -> dict[str, int]:
        """This rank's index along every dimension."""
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} is outside a world of {self.world_size} ranks")
        coords = {}
        rest = rank
        for token in self.tokens:
            coords[token] = rest % self.sizes[token]
            rest //= self.sizes[token]
        return coords

    def rank_at(self, **coords: int) -> int:
        """The global rank at the given coordinates (missing dimensions count as 0)."""
        rank = 0
        stride = 1
        for token in self.tokens:
            rank += coords.get(token, 0) * stride
            stride *= self.sizes[token]
        return rank
