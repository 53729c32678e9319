"""OperationStats and StatsBook: counters, retries, errors by code, rate, merge and JSON."""

from __future__ import annotations

import orjson
import pytest

import harness.stats
from harness.errors import InvalidArgument
from harness.stats import OperationStats, StatsBook

JSON_KEYS = [
    "operation",
    "calls",
    "successes",
    "failures",
    "errors",
    "throttles",
    "retries",
    "attempts",
    "calls_per_s",
    "latency",
    "attempt_latency",
]


def throttled_then_ok(stats: OperationStats, at: float) -> None:
    """One call: a throttled attempt, a 50 ms back-off, then a successful attempt."""
    stats.record_attempt(0.010, throttled=True, error_code="ThrottlingException")
    stats.record_attempt(0.020)
    stats.record_call(0.080, ok=True, attempts=2, at=at)


def failed(stats: OperationStats, code: str | None, at: float | None = None) -> None:
    stats.record_attempt(0.005, error_code=code)
    stats.record_call(0.005, ok=False, attempts=1, error_code=code, at=at)


class TestOperationStats:
    def test_counters(self) -> None:
        stats = OperationStats("iot.CreateThing")
        throttled_then_ok(stats, at=1.0)
        failed(stats, "ResourceAlreadyExistsException", at=2.0)
        failed(stats, None, at=3.0)
        assert (stats.calls, stats.successes, stats.failures) == (3, 1, 2)
        assert (stats.attempts, stats.retries, stats.throttles) == (4, 1, 1)
        assert stats.errors == {"ResourceAlreadyExistsException": 1, "Unknown": 1}
        assert stats.attempt_errors == {
            "ThrottlingException": 1,
            "ResourceAlreadyExistsException": 1,
        }
        assert stats.call_latency.count == 3
        assert stats.attempt_latency.count == 4
        assert stats.call_latency.max == pytest.approx(0.080, rel=0.001)
        assert (stats.first_at, stats.last_at) == (1.0, 3.0)

    def test_rejects_negative_attempts(self) -> None:
        with pytest.raises(InvalidArgument, match="attempts=-1"):
            OperationStats("op").record_call(0.1, ok=True, attempts=-1)

    def test_rate(self) -> None:
        stats = OperationStats("op")
        assert stats.rate() == 0.0
        stats.record_call(0.01, ok=True, attempts=1, at=5.0)
        assert stats.rate() == 0.0
        for i in range(1, 101):  # 101 calls at 10/s: 10 s from the first to the last
            stats.record_call(0.01, ok=True, attempts=1, at=5.0 + i / 10)
        assert stats.rate() == pytest.approx(10.0)
        stats.record_call(0.01, ok=True, attempts=1)  # untimed calls leave the rate alone
        assert stats.rate() == pytest.approx(10.0)

    def test_rate_of_simultaneous_calls(self) -> None:
        stats = OperationStats("op")
        for _ in range(3):
            stats.record_call(0.01, ok=True, attempts=1, at=7.0)
        assert stats.rate() == 0.0

    def test_merge(self) -> None:
        a, b = OperationStats("op"), OperationStats("op")
        throttled_then_ok(a, at=10.0)
        failed(b, "InternalFailureException", at=4.0)
        failed(b, "InternalFailureException")
        a.merge(b)
        assert (a.calls, a.successes, a.failures, a.attempts, a.retries) == (3, 1, 2, 4, 1)
        assert a.errors == {"InternalFailureException": 2}
        assert (a.first_at, a.last_at) == (4.0, 10.0)
        assert a.rate() == pytest.approx(1 / 6)
        assert a.call_latency.count == 3

    def test_merge_keeps_times_when_the_other_has_none(self) -> None:
        a, b = OperationStats("op"), OperationStats("op")
        a.merge(b)
        assert (a.first_at, a.last_at) == (None, None)
        b.record_call(0.01, ok=True, attempts=1, at=3.0)
        a.merge(b)
        assert (a.first_at, a.last_at) == (3.0, 3.0)

    def test_to_json(self) -> None:
        stats = OperationStats("iot.CreateThing")
        throttled_then_ok(stats, at=0.0)
        failed(stats, "InvalidRequestException", at=3.0)
        doc = stats.to_json()
        assert list(doc) == JSON_KEYS
        assert doc["errors"] == {"InvalidRequestException": 1}
        assert doc["calls_per_s"] == 0.33
        assert doc["latency"]["count"] == 2
        assert doc["latency"]["max_ms"] == pytest.approx(80.0, rel=0.001)
        assert doc["attempt_latency"]["count"] == 3
        assert orjson.loads(orjson.dumps(doc)) == doc

    def test_empty_to_json(self) -> None:
        doc = OperationStats("op").to_json()
        assert doc["calls"] == 0 and doc["calls_per_s"] == 0.0 and doc["errors"] == {}
        assert doc["latency"]["p99_ms"] == 0.0

    def test_repr(self) -> None:
        stats = OperationStats("iot.ListThings")
        throttled_then_ok(stats, at=0.0)
        assert repr(stats) == (
            "<OperationStats iot.ListThings calls=1 ok=1 failed=0 attempts=2 throttles=1>"
        )


class TestStatsBook:
    def test_creates_on_first_use_and_iterates_by_name(self) -> None:
        book = StatsBook()
        first = book.stats("iot.ListThings")
        assert book.stats("iot.ListThings") is first
        book.stats("iot.CreateThing")
        assert [s.operation for s in book] == ["iot.CreateThing", "iot.ListThings"]
        assert len(book) == 2 and "iot.CreateThing" in book and "x" not in book
        assert book["iot.ListThings"] is first
        with pytest.raises(KeyError):
            book["iot.DeleteThing"]

    def test_merge_and_totals(self) -> None:
        worker_a, worker_b = StatsBook(), StatsBook()
        throttled_then_ok(worker_a.stats("iot.CreateThing"), at=1.0)
        failed(worker_b.stats("iot.CreateThing"), "ThrottlingException", at=2.0)
        throttled_then_ok(worker_b.stats("iot.DescribeThing"), at=5.0)
        worker_a.merge(worker_b)
        create = worker_a["iot.CreateThing"]
        assert (create.calls, create.failures, create.first_at, create.last_at) == (2, 1, 1.0, 2.0)
        assert worker_b["iot.CreateThing"].calls == 1  # the source is untouched

        total = worker_a.totals()
        assert total.operation == "total"
        assert (total.calls, total.attempts, total.retries, total.throttles) == (3, 5, 2, 2)
        assert (total.first_at, total.last_at) == (1.0, 5.0)
        assert total.call_latency.count == 3
        assert worker_a["iot.CreateThing"].calls == 2  # totals() is a copy

    def test_to_json(self) -> None:
        book = StatsBook()
        for name in ("iot.UpdateThing", "iot.AttachPolicy"):
            throttled_then_ok(book.stats(name), at=0.0)
        docs = book.to_json()
        assert [d["operation"] for d in docs] == ["iot.AttachPolicy", "iot.UpdateThing"]
        assert all(list(d) == JSON_KEYS for d in docs)
        assert repr(book) == "<StatsBook operations=2 calls=2>"


def test_public_names() -> None:
    assert harness.stats.__all__ == [
        "LatencyHistogram",
        "LatencySummary",
        "OperationStats",
        "StatsBook",
        "Timeline",
        "TimelinePoint",
        "read_hdr_log",
        "write_hdr_log",
    ]
    for name in harness.stats.__all__:
        assert getattr(harness.stats, name).__module__.startswith("harness.stats.")
