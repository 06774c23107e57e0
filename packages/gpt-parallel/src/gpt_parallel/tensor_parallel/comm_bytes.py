"""The byte counter, now ``gpt_parallel.comm.volume`` (it counts every collective, not only the
tensor-parallel ones); re-exported so existing imports keep working."""

from gpt_parallel.comm.volume import (
    OPS,
    CommRecord,
    CommRecorder,
    _installed,
    count_bytes,
    record,
    ring_bytes_sent,
    theoretical_bytes,
)

__all__ = [
    "OPS",
    "CommRecord",
    "CommRecorder",
    "_installed",
    "count_bytes",
    "record",
    "ring_bytes_sent",
    "theoretical_bytes",
]
