"""Run the loader beside the saver through a bounded queue (``--max-queue-size`` parts), as the
original runs its saver process: reading the next layer overlaps writing the last, and at most
that many parts wait in memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

from tqdm import tqdm

from .parts import Part

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def streamed(parts: Iterable[Part], *, max_queue_size: int, total: int) -> Iterator[Part]:
    """The loader's parts, produced in a background thread, with a progress bar on stderr."""
    channel: queue.Queue = queue.Queue(maxsize=max(1, max_queue_size))
    stop = threading.Event()

    def produce() -> None:
        try:
            for part in parts:
                while not stop.is_set():
                    try:
                        channel.put(part, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            channel.put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            channel.put(_Failed(error))

    worker = threading.Thread(target=produce, name="convert-ckpt-loader", daemon=True)
    worker.start()
    try:
        with tqdm(total=total, unit="part", desc="converting", leave=False) as bar:
            while True:
                item = channel.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                bar.set_postfix_str(item.name, refresh=False)
                yield item
                bar.update(1)
    finally:
        stop.set()
        while worker.is_alive():
            try:
                channel.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.1)
