"""Adapt a :class:`~harness.throttle.TokenBucket`'s rate to throttling feedback, CUBIC-style.

This is botocore's adaptive mode (``botocore/retries/throttling.py``: ``CubicCalculator``, with the
same ``beta`` = 0.7 and ``scale`` = 0.4), with the changes its known limitations call for:

* one controller **per bucket**, that is per (identity, region, service, operation), so a
  throttled ``ListThings`` never slows ``CreateThing``;
* **one decrease per round trip**: when a burst of in-flight requests all come back throttled,
  botocore cuts the rate once per response (0.7**50 after 50 of them). We cut once for them: a
  throttle counts only when its request was sent after the last decrease (the engine says when
  it sent it); a throttle of a request sent since then means the cut rate is still too high, and
  cuts again at once. Callers that do not say when they sent get a time cooldown instead;
* **no backlog after a cut**: a decrease empties the bucket (:meth:`TokenBucket.hold`), so the
  tasks queued at the old pace do not go out as a burst into more throttles;
* **fast convergence** (as in CUBIC, RFC 9438 section 4.7): throttled again below the last
  ``w_max``, the curve aims at halfway between, so it probes the limit that was just found
  less eagerly;
* it starts at the known quota (the ceiling) instead of unlimited, and never goes above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from harness.errors import InvalidArgument

if TYPE_CHECKING:
    from harness.throttle._bucket import TokenBucket

__all__ = ["AdaptiveRate", "AdaptiveStatistics"]

#: The bucket is only told about rate changes larger than this fraction, so that the per-success
#: path stays a clock read and a little arithmetic.
_UPDATE_THRESHOLD = 0.01

#: The rate at which ``scale`` is the cubic's constant as given (botocore's; see _c).
_SCALE_RATE = 100.0

#: The default lowest rate (botocore's), unless the ceiling is lower.
_DEFAULT_FLOOR = 0.5


@dataclass(frozen=True, slots=True)
class AdaptiveStatistics:
    """A snapshot of an :class:`AdaptiveRate`.

    :param rate: the rate the controller wants now
    :param ceiling: the highest rate it will ever set
    :param floor: the lowest rate it will ever set
    :param throttles: decreases applied (throttles inside a cooldown are not counted)
    :param last_throttle_at: ``anyio.current_time()`` of the last decrease, ``None`` if none yet
    """

    rate: float
    ceiling: float
    floor: float
    throttles: int
    last_throttle_at: float | None


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InvalidArgument(f"{name} must be a positive finite number; got {name}={value!r}")
    return float(value)


class AdaptiveRate:
    """Drive ``bucket``'s rate from throttle and success signals.

    On a throttle the rate drops to ``rate * beta`` (never below ``floor``); on each success it
    follows the cubic ``scale * (t - K)**3 + w_max`` back up: fast at first, flat near the rate
    that was last throttled (``w_max``), then probing beyond it, never above ``ceiling``.

    :param bucket: the bucket whose rate this controller sets
    :param ceiling: the highest rate, usually the published quota
    :param floor: the lowest rate; by default botocore's minimum, 0.5 per second, or the
        ceiling when that is lower (a 0.01 TPS override)
    :param beta: the multiplicative decrease on a throttle
    :param scale: the cubic's scale constant (botocore's ``C``)
    :param cooldown: for throttles reported without a send time: seconds after a decrease
        during which they are ignored; ``None`` means ``max(1, 1 / rate)`` after the decrease,
        which covers requests already in flight and, at low rates, the next reserved slot
    :raises InvalidArgument: when an argument is out of range
    """

    __slots__ = (
        "_base",
        "_bucket",
        "_ceiling",
        "_confirmed",
        "_cooldown",
        "_cooldown_until",
        "_cut_at",
        "_epoch",
        "_floor",
        "_k",
        "_last_throttle",
        "_rate",
        "_throttles",
        "_w_max",
        "beta",
        "scale",
    )

    def __init__(
        self,
        bucket: TokenBucket,
        ceiling: float,
        *,
        floor: float | None = None,
        beta: float = 0.7,
        scale: float = 0.4,
        cooldown: float | None = None,
    ) -> None:
        self._ceiling = _positive("ceiling", ceiling)
        self._floor = _DEFAULT_FLOOR if floor is None else _positive("floor", floor)
        if floor is not None and self._floor > self._ceiling:
            raise InvalidArgument(
                f"floor must not exceed the ceiling {ceiling!r}; got floor={floor!r}"
            )
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta < 1:
            raise InvalidArgument(f"beta must be between 0 and 1 (exclusive); got beta={beta!r}")
        if cooldown is not None and (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, int | float)
            or not 0 <= cooldown < math.inf
        ):
            raise InvalidArgument(
                f"cooldown must be a finite number >= 0; got cooldown={cooldown!r}"
            )
        #: The multiplicative decrease applied on a throttle.
        self.beta = float(beta)
        #: The cubic's scale constant.
        self.scale = _positive("scale", scale)
        self._cooldown = cooldown
        self._bucket = bucket
        self._rate = min(max(bucket.rate, self._effective_floor()), self._ceiling)
        # The cubic curve: rate(t) = scale * (t - epoch - K)**3 + w_max, never below _base.
        # epoch None means "no curve yet": the rate holds until a success starts one.
        self._epoch: float | None = None
        self._w_max = self._rate
        self._k = 0.0
        self._base = self._rate
        self._last_throttle: float | None = None
        self._cooldown_until = -math.inf
        # When the last decrease happened: throttles of requests sent before it are its echo.
        self._cut_at = -math.inf
        # Whether a request sent at the current rate succeeded since the last cut.
        self._confirmed = True
        self._throttles = 0
        if bucket.rate != self._rate:
            bucket.set_rate(self._rate)

    def _effective_floor(self) -> float:
        # An override may set a ceiling below the floor (a 0.1 TPS quota); the ceiling wins.
        return min(self._floor, self._ceiling)

    @property
    def rate(self) -> float:
        """The rate the controller wants now (the bucket follows within 1%)."""
        return self._rate

    @property
    def throttles(self) -> int:
        """Decreases applied so far; throttles inside a cooldown do not count."""
        return self._throttles

    @property
    def ceiling(self) -> float:
        """The highest rate the controller sets. A lower ceiling also caps the current rate."""
        return self._ceiling

    @ceiling.setter
    def ceiling(self, value: float) -> None:
        value = _positive("ceiling", value)
        pinned = self._rate >= self._ceiling
        self._ceiling = value
        if self._rate > value:
            self._w_max = min(self._w_max, value)
            self._base = min(self._base, value)
            self._apply(value, force=True)
        elif pinned and value > self._rate:
            # We sat at the old ceiling: the old curve has long run past w_max and would jump
            # straight to the new ceiling. Probe upwards from here instead, starting slowly.
            self._epoch = None

    def reset(self, rate: float | None = None) -> None:
        """Forget the throttling history and set the rate (default: the ceiling).

        :raises InvalidArgument: when ``rate <= 0``
        """
        target = self._ceiling if rate is None else _positive("rate", rate)
        target = min(max(target, self._effective_floor()), self._ceiling)
        self._epoch = None
        self._w_max = self._base = target
        self._k = 0.0
        self._cooldown_until = self._cut_at = -math.inf
        self._confirmed = True
        self._apply(target, force=True)

    def on_throttle(self, sent_at: float | None = None) -> bool:
        """Record a throttled response: cut the rate, unless this throttle answers a request
        sent before the last cut (or, without ``sent_at``, comes within the cooldown).

        A cut empties the bucket up to one interval at the new rate (:meth:`TokenBucket.hold`).

        :param sent_at: when the throttled request was sent (``anyio.current_time()``)
        :returns: ``True`` when the rate was decreased
        """
        now = anyio.current_time()
        if sent_at is not None:
            if sent_at < self._cut_at:
                return False
        elif now < self._cooldown_until:
            return False

        floor = self._effective_floor()
        rate = self._rate
        # Fast convergence: throttled again below the rate of the previous throttle, the limit
        # has moved down; aim the curve's plateau between the two rather than at the old one.
        w_max = rate * (1 + self.beta) / 2 if rate < self._w_max else rate
        # Throttled again before a single request at the cut rate got through: far too fast
        # still (a start at many times the quota). Cut deeper, so that the descent takes a few
        # round trips, each of which costs up to a full window of throttled requests.
        beta = self.beta if self._confirmed else self.beta * self.beta
        new = max(floor, rate * beta)
        self._w_max = max(w_max, new)
        self._k = math.cbrt(max(self._w_max - new, 0.0) / self._c())
        self._confirmed = False
        self._epoch = self._last_throttle = self._cut_at = now
        self._base = new
        wait = self._cooldown if self._cooldown is not None else max(1.0, 1.0 / new)
        self._cooldown_until = now + wait
        self._throttles += 1
        self._apply(new, force=True)
        self._bucket.hold(now + 1.0 / new)
        return True

    def on_success(self, sent_at: float | None = None) -> None:
        """Record a successful response: move the rate along the cubic towards the ceiling.

        :param sent_at: when the request was sent; a success of a request sent after the last
            cut confirms the cut rate (another throttle then cuts by ``beta`` again, not more)
        """
        if self._rate >= self._ceiling:
            return

        if sent_at is None or sent_at >= self._cut_at:
            self._confirmed = True
        now = anyio.current_time()
        if self._epoch is None:
            # Below the ceiling with no throttle to recover from (a lowered start, a raised
            # ceiling): probe upwards from the current rate, slowly at first.
            self._epoch, self._w_max, self._k, self._base = now, self._rate, 0.0, self._rate
        t = now - self._epoch - self._k
        cubic = self._c() * t * t * t + self._w_max
        self._apply(min(self._ceiling, max(self._base, cubic)), force=False)

    def _c(self) -> float:
        # The cubic's constant grows with the rate it aims at, so that a recovery takes as many
        # seconds at 10 TPS as at 1,000 (botocore's absolute 0.4 is ours at 100 TPS): with an
        # absolute constant a small quota is probed every second or two, and each probe costs
        # a throttle, a tenth of the traffic at 10 TPS.
        return self.scale * self._w_max / _SCALE_RATE

    def _apply(self, rate: float, *, force: bool) -> None:
        self._rate = rate
        current = self._bucket.rate
        if rate == current:
            return

        # Always land exactly on the ceiling, even when the last step is under the threshold.
        if force or rate >= self._ceiling or abs(rate - current) > _UPDATE_THRESHOLD * current:
            self._bucket.set_rate(rate)

    def statistics(self) -> AdaptiveStatistics:
        """Return a snapshot of the controller's state."""
        return AdaptiveStatistics(
            rate=self._rate,
            ceiling=self._ceiling,
            floor=self._floor,
            throttles=self._throttles,
            last_throttle_at=self._last_throttle,
        )

    def __repr__(self) -> str:
        return (
            f"<AdaptiveRate rate={self._rate:.3g}/s ceiling={self._ceiling:g}"
            f" floor={self._floor:g} throttles={self._throttles}>"
        )
