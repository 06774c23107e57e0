"""Ctrl-C and `kill` stop a run cleanly: temporary files are removed, nothing is half-published.

SIGINT and SIGTERM both raise `Interrupted` in the main thread, so the same cleanup runs for
either (the default SIGTERM action would kill the process and leave its temporary files). While
outputs are being published (renamed into place), a signal is held back and raised right after,
so a run is either wholly published or not at all.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `exit_code` is the shell's 128 + signal number.

    `held` says it arrived while held back, so what was being done then was completed first.
    """

    def __init__(self, signum: int, held: bool = False) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.held = held

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalGuard:
    """Turns SIGINT/SIGTERM into `Interrupted` while active; `deferred()` holds them back."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._deferring = False
        self._pending: int | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self._deferring:
            self._pending = self._pending or signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():  # only there can it install
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold signals back for the duration; one that arrived is raised on the way out."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise Interrupted(signum, held=True)
