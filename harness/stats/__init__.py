"""Latency statistics: HDR histograms, coordinated-omission correction, per-operation aggregates.

Callers pass times in (seconds as floats, from ``anyio.current_time()`` or any clock they own);
this package never reads a clock.

>>> from harness.stats import StatsBook
>>> book = StatsBook()
>>> book.stats("iot.CreateThing").record_call(0.012, ok=True, attempts=1, at=10.0)
>>> book.totals().calls
1
"""

from __future__ import annotations

from harness.stats._histogram import (
    LatencyHistogram,
    LatencySummary,
    read_hdr_log,
    write_hdr_log,
)
from harness.stats._operations import OperationStats, StatsBook
from harness.stats._timeline import Timeline, TimelinePoint

__all__ = [
    "LatencyHistogram",
    "LatencySummary",
    "OperationStats",
    "StatsBook",
    "Timeline",
    "TimelinePoint",
    "read_hdr_log",
    "write_hdr_log",
]
