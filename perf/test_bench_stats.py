"""Micro benchmarks of the per-call statistics path (``pytest perf/test_bench_stats.py``).

Every call the engine makes goes through ``OperationStats.record_call`` (and a histogram record),
so these set the floor of the harness's own cost per call. GC is disabled while measuring.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.stats import LatencyHistogram, OperationStats

# Short runs: these guard against regressions of multiples, not of percents.
BENCH = pytest.mark.benchmark(max_time=0.3, min_rounds=5, disable_gc=True, warmup=False)


@BENCH
def test_histogram_record(benchmark: Any) -> None:
    hist = LatencyHistogram()
    benchmark(hist.record, 0.0123)
    assert hist.count > 0


@BENCH
def test_operation_record_call(benchmark: Any) -> None:
    stats = OperationStats("iot.CreateThing")
    benchmark(stats.record_call, 0.0456, ok=True, attempts=1, at=12.5)
    assert stats.calls > 0
