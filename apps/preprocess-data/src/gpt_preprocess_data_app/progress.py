"""Progress: a tqdm bar (MB/s, docs/s) on a terminal, the original's lines otherwise.

The lines are the original's, word for word, so log scrapers keep working:
`Processed {n} documents ({docs/s} docs/s, {MB/s} MB/s).` every --log-interval documents, with
MB = 2**20 bytes of input read.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

MB = 1024 * 1024


def processed_line(documents: int, elapsed: float, nbytes: int) -> str:
    """The original's progress line."""
    elapsed = max(elapsed, 1e-9)
    return f"Processed {documents} documents ({documents / elapsed} docs/s, {nbytes / elapsed / MB} MB/s)."


def _tqdm_bar(total: int | None, stream: TextIO) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=stream,
        dynamic_ncols=True,
        desc="preprocess",
        mininterval=0.25,
    )


class Progress:
    """Counts documents and input bytes from the moment `start` is called."""

    def __init__(
        self,
        log_interval: int,
        total_bytes: int | None = None,
        stream: TextIO | None = None,
        bar: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.log_interval = log_interval
        self.total_bytes = total_bytes
        self.use_bar = self.stream.isatty() if bar is None else bar
        self.documents = 0
        self.nbytes = 0
        self._bar: Any = None
        self._started = time.perf_counter()
        self._last_postfix = 0.0

    def start(self) -> None:
        """Start the clock (after startup, as the original measures) and the bar."""
        self._started = time.perf_counter()
        if self.use_bar:
            self._bar = _tqdm_bar(self.total_bytes, self.stream)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def note(self, message: str) -> None:
        """An informational line (stdout) that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stdout)
        else:
            print(message, flush=True)

    def _postfix(self, now: float) -> None:
        self._last_postfix = now
        rate = self.documents / max(now - self._started, 1e-9)
        self._bar.set_postfix_str(f"{self.documents} docs, {rate:.0f} docs/s", refresh=False)

    def update(self, documents: int, nbytes: int) -> None:
        before = self.documents
        self.documents += documents
        self.nbytes += nbytes
        if self._bar is not None:
            now = time.perf_counter()
            if now - self._last_postfix > 0.5:
                self._postfix(now)
            self._bar.update(nbytes)
            return
        interval = self.log_interval
        elapsed = self.elapsed
        for count in range((before // interval + 1) * interval, self.documents + 1, interval):
            print(processed_line(count, elapsed, self.nbytes), file=self.stream, flush=True)

    def close(self) -> str:
        """Stop the bar; return the summary line."""
        elapsed = max(self.elapsed, 1e-9)
        if self._bar is not None:
            self._postfix(time.perf_counter())  # the final counts, not the last refresh's
            self._bar.close()
            self._bar = None
        return (
            f"Done: {self.documents} documents, {self.nbytes / MB:.2f} MB in {elapsed:.2f} s "
            f"({self.documents / elapsed:.1f} docs/s, {self.nbytes / elapsed / MB:.2f} MB/s)."
        )
