"""Seeding as the original does it, and a tracker of named device RNG streams.

The original seeds python, numpy and torch with ``seed + 100*pp_rank`` (plus ``10*dp_rank`` with
``--data-parallel-random-init``) so pipeline stages initialise different layers differently. On
top of the default device stream it keeps three named streams that layers fork into:

- ``data-parallel-rng``: the (already offset) seed, the same on every tensor-parallel rank;
- ``model-parallel-rng``: ``seed + 2718 + tp_rank``, different per tensor-parallel rank (dropout
  inside tensor-parallel regions);
- ``expert-parallel-rng``: ``seed + 1024 + 100*ep_rank + etp_rank``.

The tracker swaps the state of the *default* generator of its device (CUDA, or the CPU when
there is no GPU), because that is the generator dropout and init functions draw from.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from gpt_parallel.device import cuda_available

DATA_PARALLEL_RNG = "data-parallel-rng"
MODEL_PARALLEL_RNG = "model-parallel-rng"
EXPERT_PARALLEL_RNG = "expert-parallel-rng"


def _device_type(device_type: str | None) -> str:
    if device_type is None:
        return "cuda" if cuda_available() else "cpu"
    if device_type not in ("cuda", "cpu"):
        raise ValueError(f"RNG device type must be 'cuda' or 'cpu', got {device_type!r}")
    return device_type


def _get_device_state(device_type: str) -> torch.Tensor:
    if device_type == "cuda":
        return torch.cuda.get_rng_state()
    return torch.default_generator.get_state()


def _set_device_state(device_type: str, state: torch.Tensor) -> None:
    if device_type == "cuda":
        torch.cuda.set_rng_state(state)
    else:
        torch.default_generator.set_state(state)


def _seed_device(device_type: str, seed: int) -> None:
    if device_type == "cuda":
        torch.cuda.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


class RNGStatesTracker:
    """Named states of the device's default generator; ``fork(name)`` runs code in one of them."""

    def __init__(self, device_type: str | None = None) -> None:
        self.device_type = _device_type(device_type)
        self.reset()

    def reset(self) -> None:
        """Forget every stream."""
        self._states: dict[str, torch.Tensor] = {}
        self._seeds: set[int] = set()

    def is_initialized(self) -> bool:
        return bool(self._states)

    def get_states(self) -> dict[str, torch.Tensor]:
        """A copy of the name -> state mapping (the states themselves are not cloned)."""
        return dict(self._states)

    def set_states(self, states: dict[str, torch.Tensor]) -> None:
        """Replace every stream, e.g. from a checkpoint."""
        expected = _get_device_state(self.device_type).numel()
        for name, state in states.items():
            if state.numel() != expected:
                raise ValueError(
                    f"RNG tracker state {name!r} has {state.numel()} bytes but a {self.device_type} "
                    f"generator state has {expected}; was it saved on another device type?"
                )
        self._states = dict(states)

    def add(self, name: str, seed: int) -> None:
        """Create stream ``name`` seeded with ``seed`` without disturbing the current state."""
        if seed in self._seeds:
            raise ValueError(f"RNG seed {seed} is already used by another stream")
        if name in self._states:
            raise ValueError(f"RNG stream {name!r} already exists")
        self._seeds.add(seed)
        original = _get_device_state(self.device_type)
        _seed_device(self.device_type, seed)
        self._states[name] = _get_device_state(self.device_type)
        _set_device_state(self.device_type, original)

    @contextlib.contextmanager
    def fork(self, name: str = MODEL_PARALLEL_RNG) -> Iterator[None]:
        """Draw from stream ``name`` inside the block; its advanced state is kept for next time."""
        if name not in self._states:
            raise KeyError(f"RNG stream {name!r} was not added; call set_random_seed first")
        original = _get_device_state(self.device_type)
        _set_device_state(self.device_type, self._states[name])
        try:
            yield
        finally:
            self._states[name] = _get_device_state(self.device_type)
            _set_device_state(self.device_type, original)


def rank_seed(
    seed: int, pp_rank: int, dp_rank: int = 0, data_parallel_random_init: bool = False
) -> int:
    """The seed a rank uses: ``seed + 100*pp_rank`` (``+ 10*dp_rank`` with random DP init)."""
    offset = seed + 100 * pp_rank
    if data_parallel_random_init:
        offset += 10 * dp_rank
    return offset


def model_parallel_manual_seed(
    tracker: RNGStatesTracker, seed: int, tp_rank: int = 0, ep_rank: int = 0, etp_rank: int = 0
) -> None:
    """Seed the default device stream with ``seed`` and (re)create the three named streams."""
    tracker.reset()
    _seed_device(tracker.device_type, seed)
    tracker.add(DATA_PARALLEL_RNG, seed)
    tracker.add(MODEL_PARALLEL_RNG, seed + 2718 + tp_rank)
    tracker.add(EXPERT_PARALLEL_RNG, seed + 1024 + 100 * ep_rank + etp_rank)


def set_random_seed(
    seed: int,
    *,
    tp_rank: int = 0,
    pp_rank: int = 0,
    dp_rank: int = 0,
    ep_rank: int = 0,
    etp_rank: int = 0,
    data_parallel_random_init: bool = False,
    device_type: str | None = None,
) -> RNGStatesTracker:
    """Seed python, numpy, torch and the device streams for this rank; return the tracker.

    Pass the ranks from a ``ParallelState`` (``tp_rank=ps.tp_rank``, ...).
    """
    if not isinstance(seed, int) or seed <= 0:
        raise ValueError(f"--seed must be a positive integer, got {seed!r}")
    offset = rank_seed(seed, pp_rank, dp_rank, data_parallel_random_init)
    random.seed(offset)
    np.random.seed(offset)
    torch.manual_seed(offset)
    tracker = RNGStatesTracker(device_type)
    model_parallel_manual_seed(tracker, offset, tp_rank, ep_rank, etp_rank)
    return tracker


def get_rng_state(tracker: RNGStatesTracker) -> dict[str, Any]:
    """Every RNG state of this process, under the keys the original's checkpoints use.

    ``cuda_rng_state`` is ``None`` on a machine without CUDA.
    """
    return {
        "random_rng_state": random.getstate(),
        "np_rng_state": np.random.get_state(),
        "torch_rng_state": torch.get_rng_state(),
        "cuda_rng_state": torch.cuda.get_rng_state() if cuda_available() else None,
        "rng_tracker_states": tracker.get_states(),
    }


def set_rng_state(state: dict[str, Any], tracker: RNGStatesTracker) -> None:
    """Restore what ``get_rng_state`` (or the original's checkpoint) saved."""
    missing = [
        key
        for key in ("random_rng_state", "np_rng_state", "torch_rng_state", "rng_tracker_states")
        if key not in state
    ]
    if missing:
        raise KeyError(f"RNG state is missing {missing}")
    random.setstate(state["random_rng_state"])
    np.random.set_state(state["np_rng_state"])
    torch.set_rng_state(state["torch_rng_state"])
    if state.get("cuda_rng_state") is not None and cuda_available():
        torch.cuda.set_rng_state(state["cuda_rng_state"])
    tracker.set_states(state["rng_tracker_states"])
