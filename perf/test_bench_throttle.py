"""Micro benchmarks of the token bucket's hot path: ``acquire_nowait`` and the GCRA ``_reserve``.

Run with ``pytest perf/test_bench_throttle.py``. ``acquire_nowait`` is timed inside an event loop
(asyncio) because it reads the time from ``anyio.current_time()``; ``_reserve`` needs no loop.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from harness.throttle import TokenBucket

# A rate so high that a benchmark never empties the bucket: we time the bookkeeping, not waits.
HUGE = 1e12


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_acquire_nowait(benchmark: BenchmarkFixture) -> None:
    bucket = TokenBucket(HUGE)
    benchmark.pedantic(bucket.acquire_nowait, rounds=200, iterations=500, warmup_rounds=5)  # type: ignore[no-untyped-call]
    assert bucket.statistics().acquired_total >= 1  # also under --benchmark-disable


def test_reserve(benchmark: BenchmarkFixture) -> None:
    bucket = TokenBucket(HUGE)
    now = 1000.0
    benchmark.pedantic(bucket._reserve, args=(now, 1), rounds=200, iterations=500)  # type: ignore[no-untyped-call]
    assert bucket._reserve(now, 1) == now  # still inside the burst: never had to wait
