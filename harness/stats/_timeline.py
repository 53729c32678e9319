"""Latency over time: one HDR histogram per fixed interval, rolled up as time moves on.

A :class:`Timeline` files each value under the interval of its *time* (usually when the call
finished), relative to an origin the caller picks. Only the last couple of intervals are kept as
live histograms (~190 kB each); older ones are closed into a :class:`TimelinePoint`: counts, a
:class:`~harness.stats.LatencySummary` and the histogram in its compressed wire form (a few
hundred bytes), which is what the HdrHistogram log needs and what merging across workers
decodes. A ten-minute run therefore costs kilobytes per second, not megabytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.errors import InvalidArgument
from harness.stats._histogram import LatencyHistogram, LatencySummary

__all__ = ["Timeline", "TimelinePoint"]

# Values may arrive slightly out of time order (several tasks finish in one loop iteration), so
# we keep this many intervals behind the newest one open before closing them.
_OPEN_BEHIND = 1


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One closed interval of a :class:`Timeline`.

    :param index: the interval's number from the origin (0 is ``[0, interval)``)
    :param start: seconds from the origin to the interval's start
    :param end: seconds from the origin to the interval's end
    :param count: values recorded in the interval
    :param errors: how many of them were marked as failures
    :param latency: the usual figures of the interval's values
    :param histogram: the interval's histogram, :meth:`LatencyHistogram.encode` form
    """

    index: int
    start: float
    end: float
    count: int
    errors: int
    latency: LatencySummary
    histogram: str

    @property
    def rate(self) -> float:
        """Values per second over the interval."""
        span = self.end - self.start
        return self.count / span if span > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the interval without its histogram, latency in ms, as a JSON-ready dict."""
        return {
            "t": round(self.start, 3),
            "count": self.count,
            "errors": self.errors,
            "per_s": round(self.rate, 3),
            "latency": self.latency.to_json(),
        }


class _Open:
    __slots__ = ("count", "errors", "hist")

    def __init__(self) -> None:
        self.hist = LatencyHistogram()
        self.count = 0
        self.errors = 0


class Timeline:
    """Per-interval latency histograms by time.

    :param origin: the caller's time of interval 0's start (e.g. the run's start)
    :param interval: the interval length in seconds
    :raises InvalidArgument: if ``interval`` is not a positive finite number
    """

    __slots__ = ("_closed", "_open", "interval", "origin")

    def __init__(self, origin: float = 0.0, interval: float = 1.0) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise InvalidArgument(f"interval must be positive seconds, got interval={interval!r}")
        #: The caller's time of interval 0's start.
        self.origin = origin
        #: The interval length in seconds.
        self.interval = interval
        self._open: dict[int, _Open] = {}
        self._closed: dict[int, TimelinePoint] = {}

    def record(self, at: float, latency_s: float, *, ok: bool = True) -> None:
        """Record one value under the interval that holds ``at``.

        :param at: the caller's time of the value (before the origin counts as interval 0)
        :param latency_s: the latency in seconds
        :param ok: ``False`` counts the value as an error too
        """
        index = max(0, int((at - self.origin) // self.interval))
        slot = self._open.get(index)
        if slot is None:
            slot = self._open[index] = self._reopen(index)
            self._close_before(index - _OPEN_BEHIND)
        slot.hist.record(latency_s)
        slot.count += 1
        if not ok:
            slot.errors += 1

    def _reopen(self, index: int) -> _Open:
        slot = _Open()
        closed = self._closed.pop(index, None)
        if closed is not None:
            # A value too late for an interval we closed already (rare): reopen it, so that it
            # still lands in its own interval.
            slot.hist = LatencyHistogram.decode(closed.histogram)
            slot.count, slot.errors = closed.count, closed.errors
        return slot

    def _close_before(self, index: float) -> None:
        for old in sorted(i for i in self._open if i < index):
            self._close_one(old)

    def _close_one(self, index: int) -> None:
        slot = self._open.pop(index)
        start = index * self.interval
        self._closed[index] = TimelinePoint(
            index=index,
            start=start,
            end=start + self.interval,
            count=slot.count,
            errors=slot.errors,
            latency=slot.hist.summary(),
            histogram=slot.hist.encode(),
        )

    def close(self) -> None:
        """Close every open interval (call once the recording is over)."""
        self._close_before(math.inf)

    def points(self, *, fill: bool = True) -> list[TimelinePoint]:
        """Return the closed intervals in time order.

        :param fill: also return empty points for intervals without values between the first
            and the last one, so that a plot of the rate drops to zero there
        """
        if not self._closed:
            return []
        if not fill:
            return [self._closed[i] for i in sorted(self._closed)]
        empty = LatencyHistogram()
        blank = empty.encode()
        zero = empty.summary()
        return [
            self._closed.get(i)
            or TimelinePoint(i, i * self.interval, (i + 1) * self.interval, 0, 0, zero, blank)
            for i in range(min(self._closed), max(self._closed) + 1)
        ]

    def hdr_intervals(self) -> list[tuple[float, float, str]]:
        """Return ``(start, end, encoded histogram)`` per non-empty closed interval, for
        :func:`~harness.stats.write_hdr_log` (times in seconds from the origin)."""
        return [(p.start, p.end, p.histogram) for p in self.points(fill=False) if p.count]

    def merge(self, other: Timeline) -> None:
        """Add ``other``'s closed intervals to ours, interval by interval.

        Both must be closed and share the interval length; their origins are taken to be the
        same instant (workers of one run agree on it, whatever their clocks say).

        :raises InvalidArgument: if the interval lengths differ or either has open intervals
        """
        if other.interval != self.interval:
            raise InvalidArgument(
                f"cannot merge timelines of {other.interval} s and {self.interval} s intervals"
            )
        if self._open or other._open:
            raise InvalidArgument("cannot merge timelines with open intervals: close() them")
        for index, theirs in other._closed.items():
            ours = self._closed.get(index)
            if ours is None:
                self._closed[index] = theirs
                continue
            hist = LatencyHistogram.decode(ours.histogram)
            hist.merge(LatencyHistogram.decode(theirs.histogram))
            self._closed[index] = TimelinePoint(
                index=index,
                start=ours.start,
                end=ours.end,
                count=ours.count + theirs.count,
                errors=ours.errors + theirs.errors,
                latency=hist.summary(),
                histogram=hist.encode(),
            )

    def to_json(self) -> list[dict[str, Any]]:
        """Return :meth:`TimelinePoint.to_json` of every interval, gaps filled."""
        return [point.to_json() for point in self.points()]

    def __repr__(self) -> str:
        return (
            f"<Timeline interval={self.interval}s closed={len(self._closed)} "
            f"open={len(self._open)}>"
        )
