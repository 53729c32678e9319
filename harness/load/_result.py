"""What a load run measured: per-operation latency (corrected and raw), rates, lateness.

Everything here merges (workers send their results to the parent, which adds them up) and
pickles (histograms travel in their compressed wire form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.stats import LatencyHistogram, OperationStats, StatsBook, Timeline, write_hdr_log

if TYPE_CHECKING:
    from pathlib import Path

    from harness.load._profile import RateProfile

__all__ = ["LoadResult", "OperationResult"]

#: Below this share of the target rate, or above this share of late starts, the client (or its
#: connection pool) did not keep up, and the latency figures describe a lighter load.
KEEP_UP_RATIO = 0.95
LATE_SHARE = 0.01


class OperationResult:
    """The figures of one operation (or of all of them, named ``"total"``).

    ``stats.call_latency`` is the *raw* latency (from the actual send, retries included) and
    ``stats.attempt_latency`` that of each HTTP attempt; :attr:`corrected` is measured from the
    request's intended send time.
    """

    __slots__ = ("corrected", "corrected_timeline", "name", "raw_timeline", "stats")

    def __init__(self, name: str, origin: float = 0.0) -> None:
        #: ``service.Operation``, or ``"total"``.
        self.name = name
        #: Counters, errors by code, raw call latency and attempt latency.
        self.stats = OperationStats(name)
        #: Latency from the intended send time (coordinated omission corrected).
        self.corrected = LatencyHistogram()
        #: Both latencies per second of the run, by completion time.
        self.corrected_timeline = Timeline(origin)
        self.raw_timeline = Timeline(origin)

    def close(self) -> None:
        """Close the timelines (the run is over)."""
        self.corrected_timeline.close()
        self.raw_timeline.close()

    def merge(self, other: OperationResult) -> None:
        """Add ``other``'s figures to ours."""
        self.stats.merge(other.stats)
        self.corrected.merge(other.corrected)
        self.corrected_timeline.merge(other.corrected_timeline)
        self.raw_timeline.merge(other.raw_timeline)

    def to_json(self) -> dict[str, Any]:
        """Counters, the three latency summaries and the per-second series, JSON-ready."""
        data = self.stats.to_json()
        data.pop("latency")
        data.pop("attempt_latency")
        data["latency"] = {
            "corrected": self.corrected.summary().to_json(),
            "raw": self.stats.call_latency.summary().to_json(),
            "attempt": self.stats.attempt_latency.summary().to_json(),
        }
        raw = {p.index: p for p in self.raw_timeline.points()}
        data["timeline"] = [
            {
                "t": point.start,
                "completed": point.count,
                "errors": point.errors,
                "corrected": point.latency.to_json(),
                "raw": raw[point.index].latency.to_json() if point.index in raw else None,
            }
            for point in self.corrected_timeline.points()
        ]
        return data

    def __repr__(self) -> str:
        return f"<OperationResult {self.name} calls={self.stats.calls}>"


@dataclass(slots=True, eq=False)
class LoadResult:
    """The outcome of a load run (one worker's, or all workers' merged).

    :param sends: the lateness (actual send minus intended time) of each request, by send
        time: its counts are the requests sent per second
    """

    scenario: str
    profile: RateProfile
    connections: int
    max_in_flight: int
    late_after: float
    workers: int = 1
    started_epoch: float = 0.0
    scheduled: int = 0
    sent: int = 0
    sent_in_window: int = 0
    late_starts: int = 0
    backlog_waits: int = 0
    max_backlog: int = 0
    elapsed: float = 0.0
    operations: dict[str, OperationResult] = field(default_factory=dict)
    total: OperationResult = field(default_factory=lambda: OperationResult("total"))
    lateness: LatencyHistogram = field(default_factory=LatencyHistogram)
    sends: Timeline = field(default_factory=Timeline)

    @property
    def names(self) -> list[str]:
        """The operations' names, sorted."""
        return sorted(self.operations)

    @property
    def target_rate(self) -> float:
        """Scheduled requests per second over the run (the ramp lowers it below the rate)."""
        return self.profile.mean_rate

    @property
    def achieved_rate(self) -> float:
        """Requests sent within the run's duration, per second of it."""
        return self.sent_in_window / self.profile.duration

    @property
    def rate_ratio(self) -> float:
        """Achieved / target rate (1.0 when the client kept up)."""
        return self.achieved_rate / self.target_rate if self.target_rate else 0.0

    def call_counts(self, name: str | None = None) -> tuple[int, int]:
        """``(calls, failed calls)`` of one operation, or of all with ``None``."""
        stats = self.total.stats if name is None else self.operations[name].stats
        return stats.calls, stats.failures

    def corrected_latency(self, name: str | None = None) -> LatencyHistogram:
        """The corrected latency histogram of one operation, or of all with ``None``."""
        return self.total.corrected if name is None else self.operations[name].corrected

    def book(self) -> StatsBook:
        """The per-operation :class:`~harness.stats.OperationStats` (raw latency) as a book."""
        book = StatsBook()
        for name in self.names:
            book.stats(name).merge(self.operations[name].stats)
        return book

    def warnings(self) -> list[str]:
        """Why the figures may describe a lighter load than asked for (empty when they do not)."""
        found = []
        if self.rate_ratio < KEEP_UP_RATIO:
            found.append(
                f"the client did not keep up: achieved {self.achieved_rate:.1f}/s of the "
                f"target {self.target_rate:.1f}/s ({self.rate_ratio:.1%}); add --connections or "
                "--workers"
            )
        if self.sent and self.late_starts > LATE_SHARE * self.sent:
            found.append(
                f"{self.late_starts} of {self.sent} requests were sent more than "
                f"{self.late_after * 1000:g} ms late (max {self.lateness.max * 1000:.1f} ms): "
                "their corrected latency includes the wait"
            )
        return found

    def merge(self, other: LoadResult) -> None:
        """Add another worker's result to this one."""
        self.workers += other.workers
        self.started_epoch = min(self.started_epoch, other.started_epoch)
        self.scheduled += other.scheduled
        self.sent += other.sent
        self.sent_in_window += other.sent_in_window
        self.late_starts += other.late_starts
        self.backlog_waits += other.backlog_waits
        # Workers run at once, so their backlogs add up (the sum of maxima bounds the total).
        self.max_backlog += other.max_backlog
        self.elapsed = max(self.elapsed, other.elapsed)
        for name, theirs in other.operations.items():
            ours = self.operations.setdefault(name, OperationResult(name))
            ours.merge(theirs)
        self.total.merge(other.total)
        self.lateness.merge(other.lateness)
        self.sends.merge(other.sends)

    def hdr_intervals(self) -> dict[str, list[tuple[float, float, str]]]:
        """Per-second intervals tagged ``service.Operation.corrected`` and ``.raw``, for
        :func:`~harness.stats.write_hdr_log`."""
        tagged: dict[str, list[tuple[float, float, str]]] = {}
        for name in self.names:
            op = self.operations[name]
            tagged[f"{name}.corrected"] = op.corrected_timeline.hdr_intervals()
            tagged[f"{name}.raw"] = op.raw_timeline.hdr_intervals()
        return tagged

    def write_hdr(self, path: str | Path) -> None:
        """Write the HdrHistogram interval log (see :meth:`hdr_intervals`)."""
        write_hdr_log(path, self.hdr_intervals(), start_time=self.started_epoch)

    def timeline_json(self) -> list[dict[str, Any]]:
        """Per second of the run: target, sent, completed, errors and both latencies (ms)."""
        sent = {p.index: p for p in self.sends.points()}
        raw = {p.index: p for p in self.total.raw_timeline.points()}
        done = {p.index: p for p in self.total.corrected_timeline.points()}
        last = max([*sent, *done, int(self.profile.duration) - 1], default=0)
        rows = []
        for i in range(last + 1):
            target = self.profile.count_by(i + 1) - self.profile.count_by(i)
            row: dict[str, Any] = {
                "t": float(i),
                "target": round(target, 3),
                "sent": sent[i].count if i in sent else 0,
                "completed": done[i].count if i in done else 0,
                "errors": done[i].errors if i in done else 0,
            }
            row["corrected"] = done[i].latency.to_json() if i in done else None
            row["raw"] = raw[i].latency.to_json() if i in raw else None
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        """Everything: target and achieved rate, lateness, per-operation summaries, errors by
        code, and per-second series of throughput and latency."""
        profile = self.profile
        errors = self.total.stats.errors
        return {
            "scenario": self.scenario,
            "target": {
                "rate": profile.rate,
                "duration_s": profile.duration,
                "ramp_s": profile.ramp,
                "ramp_from": profile.ramp_from,
                "mean_rate": round(self.target_rate, 3),
                "scheduled": self.scheduled,
            },
            "achieved": {
                "rate": round(self.achieved_rate, 3),
                "ratio": round(self.rate_ratio, 4),
                "sent": self.sent,
                "sent_in_window": self.sent_in_window,
                "completed": self.total.stats.calls,
                "elapsed_s": round(self.elapsed, 3),
            },
            "client": {
                "workers": self.workers,
                "connections": self.connections,
                "max_in_flight": self.max_in_flight,
                "late_after_ms": self.late_after * 1000,
                "late_starts": self.late_starts,
                "lateness": self.lateness.summary().to_json(),
                "backlog_waits": self.backlog_waits,
                "max_backlog": self.max_backlog,
                "warnings": self.warnings(),
            },
            "errors": dict(sorted(errors.items())),
            "total": self.total.to_json(),
            "operations": [self.operations[name].to_json() for name in self.names],
            "timeline": self.timeline_json(),
        }
