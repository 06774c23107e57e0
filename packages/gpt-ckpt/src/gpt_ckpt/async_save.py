"""`--async-save`: write a checkpoint in the background while training goes on.

The caller stages what it saves (copies on the CPU) during the step, submits the write, and
polls each iteration; when every rank's write is done it finalizes (``dist_dir.publish``, the
tracker, the log line), as the original's ``maybe_finalize_async_save``. The write runs in a
thread over its own process group (DCP's plan exchange and barriers then never interleave
with the training's collectives on the default group). With ``persistent`` one worker thread
serves every save (``--use-persistent-ckpt-worker``); otherwise each save gets a fresh one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import torch.distributed as dist


class AsyncWriter:
    """Runs one background write at a time and reports when it is done."""

    def __init__(self, *, persistent: bool = False) -> None:
        self.persistent = persistent
        self._pending: Future | None = None
        self._queue: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self.group: dist.ProcessGroup | None = None
        if dist.is_initialized():
            # Collective: every rank builds the writer at the same point (its first save).
            self.group = dist.new_group(backend="gloo")

    def _serve(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, future = item
            _run_into(job, future)

    def submit(self, job: Callable[[], None]) -> None:
        """Start ``job`` in the background (after the previous one was finalized)."""
        if self._pending is not None:
            raise RuntimeError("an asynchronous checkpoint save is still pending")
        future: Future = Future()
        self._pending = future
        if not self.persistent:
            threading.Thread(target=_run_into, args=(job, future), daemon=True).start()
            return
        if self._worker is None:
            self._queue = queue.Queue()
            self._worker = threading.Thread(target=self._serve, daemon=True)
            self._worker.start()
        assert self._queue is not None
        self._queue.put((job, future))

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def locally_done(self) -> bool:
        return self._pending is None or self._pending.done()

    def collect(self) -> None:
        """Wait for the pending write (re-raising its error) and forget it."""
        if self._pending is None:
            return
        future, self._pending = self._pending, None
        future.result()

    def close(self) -> None:
        """Stop the persistent worker (after ``collect``)."""
        if self._queue is not None:
            self._queue.put(None)
            self._worker = None
            self._queue = None


def _run_into(job: Callable[[], None], future: Future) -> None:
    try:
        job()
    except BaseException as err:  # handed to the training thread by collect()
        future.set_exception(err)
    else:
        future.set_result(None)
