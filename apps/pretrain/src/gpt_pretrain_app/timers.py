"""Named wall-clock timers with the original's levels and its report across ranks.

`--timing-log-level` 0 keeps only the iteration timer, 1 adds the coarse phases (forward-backward,
optimizer, ...), 2 the fine ones. Timers above the level cost nothing: they are never started.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: The level of each timer the training loop starts (the original's assignment).
TIMER_LEVELS = {
    "interval-time": 0,
    "forward-backward": 1,
    "forward-compute": 2,
    "backward-compute": 2,
    "batch-generator": 2,
    "optimizer": 1,
    "optimizer-copy-to-main-grad": 1,
    "optimizer-unscale-and-check-inf": 1,
    "optimizer-clip-main-grad": 1,
    "optimizer-count-zeros": 1,
    "optimizer-inner-step": 1,
    "optimizer-copy-main-to-model-params": 1,
    "all-grads-sync": 1,
    "save-checkpoint": 0,
    "load-checkpoint": 0,
    "evaluate": 0,
}


class _Timer:
    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._start: float | None = None
        self.elapsed_s = 0.0

    def start(self, barrier: bool = False) -> None:
        self._sync()
        self._start = time.perf_counter()

    def stop(self, barrier: bool = False) -> None:
        if self._start is None:
            return
        self._sync()
        self.elapsed_s += time.perf_counter() - self._start
        self._start = None

    def take(self, reset: bool = True) -> float:
        """Seconds accumulated (a running timer counts up to now)."""
        running = self._start is not None
        if running:
            self.stop()
        value = self.elapsed_s
        if reset:
            self.elapsed_s = 0.0
        if running:
            self.start()
        return value


class _NullTimer:
    def start(self, barrier: bool = False) -> None:
        return None

    def stop(self, barrier: bool = False) -> None:
        return None

    def take(self, reset: bool = True) -> float:
        return 0.0


class Timers:
    """The named timers of one rank; `report` gathers them over ranks as the original prints them."""

    def __init__(self, log_level: int, log_option: str, sync: Callable[[], None] = lambda: None):
        self.log_level = log_level
        self.log_option = log_option
        self._sync = sync
        self._timers: dict[str, _Timer] = {}
        self._null = _NullTimer()

    def __call__(self, name: str, log_level: int | None = None) -> _Timer | _NullTimer:
        level = TIMER_LEVELS.get(name, 2) if log_level is None else log_level
        if level > self.log_level:
            return self._null
        if name not in self._timers:
            self._timers[name] = _Timer(self._sync)
        return self._timers[name]

    def elapsed_ms(
        self, names: list[str], normalizer: float, reset: bool = True
    ) -> dict[str, float]:
        return {
            n: self._timers[n].take(reset) * 1000.0 / normalizer for n in names if n in self._timers
        }

    def report(
        self,
        names: list[str],
        normalizer: float,
        gather: Callable[[list[float]], list[list[float]]] | None = None,
    ) -> str | None:
        """The original's timing block: `(min, max) time across ranks (ms):` and one row a timer."""
        names = [n for n in names if n in self._timers]
        if not names:
            return None
        mine = [self._timers[n].take(True) * 1000.0 / normalizer for n in names]
        per_rank = gather(mine) if gather is not None else [mine]
        if self.log_option == "all":
            text = "times across ranks (ms):"
            for i, name in enumerate(names):
                text += f"\n  {name}:"
                for rank, values in enumerate(per_rank):
                    text += f"\n     rank {rank:2d}: {values[i]:.2f}"
            return text
        if self.log_option == "max":
            text = "max time across ranks (ms):"
            for i, name in enumerate(names):
                worst = max(values[i] for values in per_rank)
                text += f"\n    {(name + ' ').ljust(48, '.')}: {worst:.2f}"
            return text
        text = "(min, max) time across ranks (ms):"
        for i, name in enumerate(names):
            column = [values[i] for values in per_rank]
            text += f"\n    {(name + ' ').ljust(48, '.')}: ({min(column):.2f}, {max(column):.2f})"
        return text
