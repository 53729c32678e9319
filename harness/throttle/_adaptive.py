"""Adapt a :class:`~harness.throttle.TokenBucket`'s rate to throttling feedback, CUBIC-style.

This is botocore's adaptive mode (``botocore/retries/throttling.py``: ``CubicCalculator``, with the
same ``beta`` = 0.7 and ``scale`` = 0.4), with the changes its known limitations call for:

* one controller **per bucket**, that is per (identity, region, service, operation), so a
  throttled ``ListThings`` never slows ``CreateThing``;
* a **cooldown**: when a burst of in-flight requests all come back throttled, botocore cuts the
  rate once per response (0.7**50 after 50 of them); we count the burst as one decrease;
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
    :param floor: the lowest rate (botocore's minimum is 0.5 per second too)
    :param beta: the multiplicative decrease on a throttle
    :param scale: the cubic's scale constant (botocore's ``C``)
    :param cooldown: seconds after a decrease during which further throttles are ignored;
        ``None`` means ``max(1, 1 / rate)`` after the decrease, which covers requests already
        in flight and, at low rates, the next already-reserved slot
    :raises InvalidArgument: when an argument is out of range
    """

    __slots__ = (
        "_base",
        "_bucket",
        "_ceiling",
        "_cooldown",
        "_cooldown_until",
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
        floor: float = 0.5,
        beta: float = 0.7,
        scale: float = 0.4,
        cooldown: float | None = None,
    ) -> None:
        self._ceiling = _positive("ceiling", ceiling)
        self._floor = _positive("floor", floor)
        if self._floor > self._ceiling:
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
        self._cooldown_until = -math.inf
        self._apply(target, force=True)

    def on_throttle(self) -> bool:
        """Record a throttled response: cut the rate unless a decrease happened moments ago.

        :returns: ``True`` when the rate was decreased, ``False`` inside a cooldown
        """
        now = anyio.current_time()
        if now < self._cooldown_until:
            return False

        floor = self._effective_floor()
        self._w_max = self._rate
        new = max(floor, self._rate * self.beta)
        self._k = math.cbrt(self._w_max * (1 - self.beta) / self.scale)
        self._epoch = self._last_throttle = now
        self._base = new
        wait = self._cooldown if self._cooldown is not None else max(1.0, 1.0 / new)
        self._cooldown_until = now + wait
        self._throttles += 1
        self._apply(new, force=True)
        return True

    def on_success(self) -> None:
        """Record a successful response: move the rate along the cubic towards the ceiling."""
        if self._rate >= self._ceiling:
            return

        now = anyio.current_time()
        if self._epoch is None:
            # Below the ceiling with no throttle to recover from (a lowered start, a raised
            # ceiling): probe upwards from the current rate, slowly at first.
            self._epoch, self._w_max, self._k, self._base = now, self._rate, 0.0, self._rate
        t = now - self._epoch - self._k
        cubic = self.scale * t * t * t + self._w_max
        self._apply(min(self._ceiling, max(self._base, cubic)), force=False)

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
