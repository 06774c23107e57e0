"""Encode batches in order: in this process (1 worker) or in a pool of worker processes.

The pool is fed through a bounded window of pending tasks rather than Pool.imap, because imap
reads its whole input ahead of the workers: on a corpus larger than memory it would hold the
corpus. The window keeps a few batches per worker in flight and yields results in input order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from .encode import EncodedBatch, Encoder, EncodeSettings, encode_in_worker, init_worker
from .inputs import Batch


def process_context() -> multiprocessing.context.BaseContext:
    """How to start workers: fork (fast, the original's way) unless forking looks unsafe.

    Forking copies only the calling thread; a lock that another Python thread holds at that
    moment stays held forever in the child. So with other Python threads running (a test
    runner's, a progress monitor's), or torch loaded (its thread pools are not fork-safe),
    workers start from a fresh interpreter instead. Idle native pools (OpenBLAS) are fork-safe.
    """
    override = os.environ.get("GPT_PREPROCESS_START_METHOD")
    if override:
        return multiprocessing.get_context(override)
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if forkable and threading.active_count() == 1 and "torch" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class Encoders:
    """The encoding processes of one run; a context manager that stops the pool on exit."""

    def __init__(
        self, settings: EncodeSettings, workers: int, encoder: Encoder | None = None
    ) -> None:
        self.settings = settings
        self.workers = workers
        self._encoder = encoder
        self._pool: Any = None

    def __enter__(self) -> Encoders:
        if self.workers == 1:
            self._encoder = self._encoder or Encoder(self.settings)
        else:
            context = process_context()
            # Forked workers inherit this process' Encoder (tokenizer already built); spawned
            # ones build their own from the settings.
            inherited = self._encoder if context.get_start_method() == "fork" else None
            self._pool = context.Pool(
                self.workers, initializer=init_worker, initargs=(self.settings, inherited)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def map(self, batches: Iterable[Batch]) -> Iterator[EncodedBatch]:
        """EncodedBatch of each Batch, in input order."""
        if self._pool is None:
            assert self._encoder is not None, "use Encoders as a context manager"
            for batch in batches:
                yield self._encoder.encode(batch)
            return
        window = 2 * self.workers + 2
        pending: deque = deque()
        for batch in batches:
            pending.append(self._pool.apply_async(encode_in_worker, (batch,)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
