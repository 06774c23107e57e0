"""Serving many clients through the dynamic engine: one thread owns the engine and steps it
while there is work; each client's call queues its requests and waits for their results.
Requests of different clients share the engine's steps (continuous batching)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from gpt_inference.dynamic_engine import DynamicInferenceEngine
from gpt_inference.request import InferenceResult

Submission = Callable[[DynamicInferenceEngine], list[int]]


class DynamicBatcher:
    """Runs `engine` on a daemon thread; `run(submit)` adds requests and waits for them."""

    def __init__(self, engine: DynamicInferenceEngine) -> None:
        self.engine = engine
        self._pending: list[tuple[Submission, Future]] = []
        self._waiting: dict[int, tuple[Future, list[int], dict[int, InferenceResult]]] = {}
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="dynamic-engine", daemon=True)
        self._thread.start()

    def run(self, submit: Submission) -> list[InferenceResult]:
        """`submit(engine)` adds this call's requests (returns their ids, in order); the
        results in that order. A request the engine refuses raises here."""
        future: Future = Future()
        with self._wake:
            self._pending.append((submit, future))
            self._wake.notify()
        return future.result()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self.engine.has_unfinished_requests():
                    self._wake.wait()
                pending, self._pending = self._pending, []
            for submit, future in pending:
                self._admit(submit, future)
            if self.engine.has_unfinished_requests():
                self._step()

    def _admit(self, submit: Submission, future: Future) -> None:
        try:
            ids = submit(self.engine)
        except Exception as err:  # noqa: BLE001 - the caller gets it
            future.set_exception(err)
            return
        entry = (future, ids, {})
        for request_id in ids:
            self._waiting[request_id] = entry

    def _step(self) -> None:
        try:
            finished = self.engine.step()
        except Exception as err:  # noqa: BLE001 - fail the calls in flight, keep serving
            self._fail_all(err)
            return
        for request_id, result in finished.items():
            entry = self._waiting.pop(request_id, None)
            if entry is None:  # its call failed while adding its other requests
                continue
            future, ids, results = entry
            results[request_id] = result
            if len(results) == len(ids):
                future.set_result([results[i] for i in ids])

    def _fail_all(self, err: Exception) -> None:
        futures = {id(f): f for f, _ids, _res in self._waiting.values()}
        self._waiting.clear()
        self.engine.reset()
        for future in futures.values():
            if not future.done():
                future.set_exception(err)


def describe(engine: DynamicInferenceEngine) -> dict[str, Any]:
    """The engine's memory and counters (for logs and tests)."""
    return {
        "blocks": engine.layout.num_blocks,
        "block_size": engine.layout.block_size,
        "free_blocks": len(engine.allocator.free),
        **engine.stats,
    }
