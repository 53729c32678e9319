"""Per-operation call statistics shared by ``harness run``, ``harness load`` and ``harness fuzz``.

A *call* is one logical API call as the engine sees it: every HTTP *attempt*, including retries
after throttling or transient errors, and the waits between them. Both get a latency histogram.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from harness.errors import InvalidArgument
from harness.stats._histogram import LatencyHistogram

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The error key of a failed call whose caller did not name an error code.
UNKNOWN_ERROR = "Unknown"


class OperationStats:
    """Counters and latency histograms of one operation (mutable; merge across workers).

    :param operation: the operation's name, e.g. ``"iot.CreateThing"``
    """

    __slots__ = (
        "_timed_calls",
        "attempt_errors",
        "attempt_latency",
        "attempts",
        "call_latency",
        "calls",
        "errors",
        "failures",
        "first_at",
        "last_at",
        "operation",
        "retries",
        "successes",
        "throttles",
    )

    def __init__(self, operation: str) -> None:
        #: The operation's name, e.g. ``"iot.CreateThing"``.
        self.operation = operation
        #: Finished calls, and how they ended.
        self.calls = 0
        self.successes = 0
        self.failures = 0
        #: Attempts that were throttled.
        self.throttles = 0
        #: Attempts beyond the first of each call, summed over calls.
        self.retries = 0
        #: HTTP attempts recorded with :meth:`record_attempt`.
        self.attempts = 0
        #: Failed calls by their final error code.
        self.errors: Counter[str] = Counter()
        #: Failed attempts by error code, retried ones included (throttling shows up here).
        self.attempt_errors: Counter[str] = Counter()
        #: Whole-call latency: all attempts plus the back-off waits between them.
        self.call_latency = LatencyHistogram()
        #: Latency of each HTTP attempt.
        self.attempt_latency = LatencyHistogram()
        #: Caller times of the first and last call given an ``at``.
        self.first_at: float | None = None
        self.last_at: float | None = None
        # rate() counts only calls that carry a time, so untimed calls cannot inflate it.
        self._timed_calls = 0

    def record_attempt(
        self, latency_s: float, *, throttled: bool = False, error_code: str | None = None
    ) -> None:
        """Record one HTTP attempt.

        :param latency_s: the attempt's latency in seconds
        :param throttled: whether the service throttled it
        :param error_code: its error code, if it failed
        """
        self.attempts += 1
        if throttled:
            self.throttles += 1
        if error_code is not None:
            self.attempt_errors[error_code] += 1
        self.attempt_latency.record(latency_s)

    def record_call(
        self,
        latency_s: float,
        *,
        ok: bool,
        attempts: int,
        error_code: str | None = None,
        at: float | None = None,
    ) -> None:
        """Record one finished call; its attempts are recorded separately with
        :meth:`record_attempt`.

        :param latency_s: the whole call's latency in seconds, retries and waits included
        :param ok: whether the call finally succeeded
        :param attempts: how many attempts it took (0 if it never got to send one)
        :param error_code: the final error code of a failed call (``"Unknown"`` if ``None``)
        :param at: the caller's time of the call in seconds, consistently its start or its end
        :raises InvalidArgument: if ``attempts`` is negative
        """
        if attempts < 0:
            raise InvalidArgument(f"attempts cannot be negative, got attempts={attempts!r}")
        self.calls += 1
        if ok:
            self.successes += 1
        else:
            self.failures += 1
            self.errors[UNKNOWN_ERROR if error_code is None else error_code] += 1
        self.retries += max(attempts - 1, 0)
        self.call_latency.record(latency_s)
        if at is not None:
            self._timed_calls += 1
            self.first_at = at if self.first_at is None else min(self.first_at, at)
            self.last_at = at if self.last_at is None else max(self.last_at, at)

    def merge(self, other: OperationStats) -> None:
        """Add ``other``'s counts, histograms and time span to these (the name stays)."""
        self.calls += other.calls
        self.successes += other.successes
        self.failures += other.failures
        self.throttles += other.throttles
        self.retries += other.retries
        self.attempts += other.attempts
        self.errors.update(other.errors)
        self.attempt_errors.update(other.attempt_errors)
        self.call_latency.merge(other.call_latency)
        self.attempt_latency.merge(other.attempt_latency)
        self._timed_calls += other._timed_calls
        firsts = [t for t in (self.first_at, other.first_at) if t is not None]
        lasts = [t for t in (self.last_at, other.last_at) if t is not None]
        self.first_at = min(firsts) if firsts else None
        self.last_at = max(lasts) if lasts else None

    def rate(self) -> float:
        """Return calls per second between the first and the last timed call (0.0 below 2)."""
        if self._timed_calls < 2 or self.first_at is None or self.last_at is None:
            return 0.0
        span = self.last_at - self.first_at
        # n calls span n - 1 gaps: at a steady rate r this gives exactly r, where n / span
        # would overstate short runs (2 calls 1 s apart are 1 call/s, not 2).
        return (self._timed_calls - 1) / span if span > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the counters, rate and both latency summaries (in ms) as a JSON-ready dict."""
        return {
            "operation": self.operation,
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "errors": dict(sorted(self.errors.items())),
            "throttles": self.throttles,
            "retries": self.retries,
            "attempts": self.attempts,
            "calls_per_s": round(self.rate(), 2),
            "latency": self.call_latency.summary().to_json(),
            "attempt_latency": self.attempt_latency.summary().to_json(),
        }

    def __repr__(self) -> str:
        return (
            f"<OperationStats {self.operation} calls={self.calls} ok={self.successes} "
            f"failed={self.failures} attempts={self.attempts} throttles={self.throttles}>"
        )


class StatsBook:
    """:class:`OperationStats` by operation name, created on first use, iterated in name order."""

    __slots__ = ("_by_operation",)

    def __init__(self) -> None:
        self._by_operation: dict[str, OperationStats] = {}

    def stats(self, operation: str) -> OperationStats:
        """Return the statistics of ``operation``, creating them on first use."""
        found = self._by_operation.get(operation)
        if found is None:
            found = self._by_operation[operation] = OperationStats(operation)
        return found

    def __getitem__(self, operation: str) -> OperationStats:
        return self._by_operation[operation]

    def __contains__(self, operation: object) -> bool:
        return operation in self._by_operation

    def __len__(self) -> int:
        return len(self._by_operation)

    def __iter__(self) -> Iterator[OperationStats]:
        return iter([self._by_operation[name] for name in sorted(self._by_operation)])

    def merge(self, other: StatsBook) -> None:
        """Merge every operation of ``other`` into this book."""
        for stats in other:
            self.stats(stats.operation).merge(stats)

    def to_json(self) -> list[dict[str, Any]]:
        """Return each operation's :meth:`OperationStats.to_json`, in name order."""
        return [stats.to_json() for stats in self]

    def totals(self) -> OperationStats:
        """Return all operations merged into a new :class:`OperationStats` named ``"total"``."""
        total = OperationStats("total")
        for stats in self:
            total.merge(stats)
        return total

    def __repr__(self) -> str:
        return f"<StatsBook operations={len(self)} calls={sum(s.calls for s in self)}>"
