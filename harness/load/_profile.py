"""The arrival schedule of an open-model load test: when request number ``i`` is due.

The rate is constant, or rises (or falls) linearly during a ramp at the start and then stays at
the target. The expected number of arrivals by time ``t`` is the integral of the rate, ``N(t)``;
request ``i`` (counting from 0) is due at the ``t`` where ``N(t) = i``. The schedule is a pure
function of ``i``: workers take every N-th request of one global schedule, so their arrivals
interleave exactly as one process would send them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from harness.errors import InvalidArgument

__all__ = ["RateProfile", "parse_duration", "parse_ramp"]

_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Return seconds for ``"500ms"``, ``"3s"``, ``"2m"``, ``"1h"`` or a plain number of seconds.

    :raises InvalidArgument: naming ``what`` when the text is not such a duration
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        found = _DURATION.match(str(text))
        if found is None:
            raise InvalidArgument(f"{what} {text!r}: expected a duration such as 500ms, 30s, 2m")
        seconds = float(found["number"]) * _UNITS[found["unit"]]
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InvalidArgument(f"{what} {text!r}: expected a non-negative duration")
    return seconds


def parse_ramp(text: str | float) -> tuple[float | None, float | None, float]:
    """Parse ``--ramp``: ``DURATION`` (from 0 to the rate) or ``FROM:TO:DURATION``.

    :return: ``(from rate or None, to rate or None, seconds)``
    :raises InvalidArgument: when the text is neither form
    """
    if isinstance(text, int | float) or ":" not in text:
        return None, None, parse_duration(text, "ramp")
    parts = text.split(":")
    if len(parts) != 3:
        raise InvalidArgument(f"ramp {text!r}: expected DURATION or FROM:TO:DURATION (100:500:30s)")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidArgument(f"ramp {text!r}: FROM and TO are requests per second") from None
    if not (low >= 0 and high > 0 and math.isfinite(low) and math.isfinite(high)):
        raise InvalidArgument(f"ramp {text!r}: expected FROM >= 0 and TO > 0")
    return low, high, parse_duration(parts[2], "ramp")


@dataclass(frozen=True, slots=True)
class RateProfile:
    """A target arrival rate over a run: a linear ramp, then constant.

    :param rate: requests per second once the ramp is over
    :param duration: seconds of the whole run, ramp included
    :param ramp: seconds of the ramp at the start (0: none)
    :param ramp_from: the rate at the start of the ramp
    :raises InvalidArgument: for a non-positive rate or duration, or a ramp longer than the run
    """

    rate: float
    duration: float
    ramp: float = 0.0
    ramp_from: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise InvalidArgument(f"rate must be positive requests/s, got rate={self.rate!r}")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise InvalidArgument(f"duration must be positive, got duration={self.duration!r}")
        if not 0 <= self.ramp <= self.duration:
            raise InvalidArgument(
                f"the ramp ({self.ramp} s) must fit in the duration ({self.duration} s)"
            )
        if not (math.isfinite(self.ramp_from) and self.ramp_from >= 0):
            raise InvalidArgument(f"ramp_from must be >= 0, got ramp_from={self.ramp_from!r}")

    def rate_at(self, t: float) -> float:
        """The target rate at ``t`` seconds into the run."""
        if t < self.ramp:
            return self.ramp_from + (self.rate - self.ramp_from) * t / self.ramp
        return self.rate

    def count_by(self, t: float) -> float:
        """The expected number of arrivals in ``[0, t)``: the integral of the rate."""
        t = min(max(t, 0.0), self.duration)
        if t <= self.ramp and self.ramp:
            return self.ramp_from * t + (self.rate - self.ramp_from) * t * t / (2 * self.ramp)
        ramped = (self.ramp_from + self.rate) * self.ramp / 2
        return ramped + self.rate * (t - self.ramp)

    @property
    def total(self) -> int:
        """How many requests the run schedules: every ``i`` due before the end."""
        # i is due before the end when i < N(duration); the epsilon keeps 50/s for 3 s at 150.
        return max(0, math.ceil(self.count_by(self.duration) - 1e-9))

    def time_of(self, i: int) -> float:
        """Seconds from the run's start to when request ``i`` (from 0) is due."""
        if i <= 0:
            return 0.0
        ramped = self.count_by(self.ramp) if self.ramp else 0.0
        if i < ramped:
            # Solve ramp_from * t + a * t^2 = i for t >= 0 in the form that stays exact when
            # a = 0 (a flat ramp) and when ramp_from = 0 (a ramp from zero).
            a = (self.rate - self.ramp_from) / (2 * self.ramp)
            b = self.ramp_from
            return 2 * i / (b + math.sqrt(b * b + 4 * a * i))
        return self.ramp + (i - ramped) / self.rate

    @property
    def mean_rate(self) -> float:
        """Scheduled requests per second of the run, ramp included."""
        return self.total / self.duration

    def describe(self) -> str:
        """One line, e.g. ``"200/s for 60 s (ramp 0 -> 200/s over 10 s)"``."""
        ramp = (
            f" (ramp {self.ramp_from:g} -> {self.rate:g}/s over {self.ramp:g} s)"
            if self.ramp
            else ""
        )
        return f"{self.rate:g}/s for {self.duration:g} s{ramp}"
