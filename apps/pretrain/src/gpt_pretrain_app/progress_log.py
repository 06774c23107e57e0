"""`--log-progress`: `progress.txt` in the `--save` directory, one tab-separated line per event
in the original's format, so the tools that read the original's file read ours:

    2026-12-05 11:00:00<TAB>Job ID: <SLURM_JOB_ID><TAB># GPUs: <world size><TAB><event>

Events: `Starting job` when training starts, and after each persistent save `Saved checkpoint`
with the job's and the cumulative throughput (TFLOP/s per GPU, the cumulative one counted from
the first job of the same world size in the file), the floating-point operations so far and the
tokens so far in billions.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

PROGRESS_FILENAME = "progress.txt"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _field(token: str) -> str:
    return token.split(": ", 1)[1]


@dataclass
class ProgressLog:
    """Appends the events of one job; only global rank 0 writes."""

    save_dir: str
    world_size: int
    writes: bool
    flops_at_start: float
    job_id: str = field(default_factory=lambda: os.getenv("SLURM_JOB_ID", ""))
    started: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return Path(self.save_dir) / PROGRESS_FILENAME

    def append(self, event: str) -> None:
        if not self.writes:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime(TIME_FORMAT)
        with open(self.path, "a+") as f:
            f.write(f"{stamp}\tJob ID: {self.job_id}\t# GPUs: {self.world_size}\t{event}\n")

    def start_job(self) -> None:
        self.started = time.time()
        self.append("Starting job")

    def saved(self, iteration: int, flops_so_far: float, tokens_so_far: int) -> None:
        """The line after a persistent checkpoint of `iteration` is on disk."""
        if not self.writes:
            return
        job = (flops_so_far - self.flops_at_start) / (
            max(time.time() - self.started, 1e-9) * 1e12 * self.world_size
        )
        first_start, flops_then = self._first_start_of_this_world_size()
        elapsed = max((datetime.now() - first_start).total_seconds(), 1e-9)
        cumulative = (flops_so_far - flops_then) / (elapsed * 1e12 * self.world_size)
        self.append(
            f"Saved checkpoint\tIteration: {iteration}\t"
            f"Job throughput: {job:.1f} TFLOP/s/GPU\t"
            f"Cumulative throughput: {cumulative:.1f} TFLOP/s/GPU\t"
            f"Floating-point operations: {flops_so_far:.2e}\t"
            f"Tokens (in billions): {tokens_so_far / 10**9:.2f}"
        )

    def _first_start_of_this_world_size(self) -> tuple[datetime, float]:
        """When the earliest job of the latest unbroken run of this world size started, and the
        operations saved by then (the original's `get_start_time_from_progress_log`)."""
        start: datetime | None = None
        flops_then = 0.0
        latest_saved = 0.0
        for line in self.path.read_text().splitlines():
            tokens = line.strip().split("\t")
            if len(tokens) < 4:
                continue
            if tokens[3] == "Saved checkpoint" and len(tokens) > 7:
                latest_saved = float(_field(tokens[7]))
            if int(_field(tokens[2])) != self.world_size:
                start = None
                continue
            if tokens[3] == "Starting job" and start is None:
                start = datetime.strptime(tokens[0], TIME_FORMAT)
                flops_then = latest_saved
        if start is None:  # the file lost its start line: count from this job
            return datetime.fromtimestamp(self.started), self.flops_at_start
        return start, flops_then
