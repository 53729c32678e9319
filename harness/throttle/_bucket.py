"""An async token bucket, implemented as GCRA (the generic cell rate algorithm).

GCRA keeps one number, the *theoretical arrival time* ``tat``: the moment the bucket would be full
again if nobody took another token. With emission interval ``T = 1 / rate`` and burst tolerance
``tau = (capacity - 1) * T``, a request for ``n`` tokens at time ``now`` is granted at

    grant = max(now, tat - (capacity - n) * T)        and then    tat = max(tat, grant) + n * T

which is exactly a token bucket of ``capacity`` tokens refilled at ``rate`` per second, without a
refill loop. Because each caller computes its own grant time when it arrives and simply sleeps
until then, waiters are served in arrival order with no heap, no condition and no polling.

When the rate changes, slots already promised keep their times and the bucket keeps how empty it
was after the last of them (as a fraction of a full refill): the next slot follows at the new
spacing, neither overtaking a sleeping task nor adding a burst.

:meth:`TokenBucket.hold` is the exception, for a service that said "slow down": the bucket is
emptied up to a moment (a ``Retry-After``, or one interval at a rate just cut), and the tasks
asleep on slots promised before it take new ones after it, at the current spacing. Otherwise the
backlog queued at the old pace would go out at the old pace, into more throttles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from harness.errors import HarnessError, InvalidArgument

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BucketStatistics", "TokenBucket", "WouldBlock"]

#: Grants this close to ``now`` count as immediate. Adding ``T`` up ``capacity`` times leaves a few
#: ulps of float error; without this slack the last token of a full burst would "wait" ~1e-16 s.
_EPSILON = 1e-9


class WouldBlock(HarnessError):
    """Raised by :meth:`TokenBucket.acquire_nowait` when no token is available right now.

    :param delay: seconds until the requested tokens would be available (if nobody else takes them)
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        super().__init__(f"no token available now; next in {delay * 1000:.1f} ms")


@dataclass(frozen=True, slots=True)
class BucketStatistics:
    """A snapshot of a :class:`TokenBucket`.

    :param rate: tokens added per second
    :param capacity: the most tokens the bucket holds (the burst size)
    :param tokens_available: tokens that could be taken now without waiting (0 while tasks wait)
    :param waiters: tasks currently sleeping in :meth:`TokenBucket.acquire`
    :param acquired_total: tokens granted so far (by both acquire methods)
    :param waited_total_s: seconds spent waiting in :meth:`TokenBucket.acquire`, summed over tasks
    """

    rate: float
    capacity: float
    tokens_available: float
    waiters: int
    acquired_total: int
    waited_total_s: float


def _check_rate(rate: float) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
        raise InvalidArgument(f"rate must be a positive finite number; got rate={rate!r}")
    return float(rate)


class TokenBucket:
    """Limit the rate of operations to ``rate`` per second, with bursts of up to ``capacity``.

    The bucket starts full. Use ``async with bucket:`` (one token) or :meth:`acquire`.

    :param rate: tokens per second; fractions are fine (``0.5`` is one call every two seconds)
    :param capacity: the burst size; defaults to ``max(rate * burst, 1)`` and then follows the
        rate whenever :meth:`set_rate` changes it
    :param burst: the default capacity in seconds' worth of tokens (one second's worth: what
        AWS's buckets allow; less leaves part of the service's burst unused, for jitter)
    :raises InvalidArgument: when ``rate <= 0``, ``capacity < 1`` or ``burst <= 0``
    """

    __slots__ = (
        "_acquired_total",
        "_burst",
        "_capacity",
        "_explicit_capacity",
        "_held_until",
        "_holds",
        "_interval",
        "_last_grant",
        "_rate",
        "_seq",
        "_tat",
        "_waited_total",
        "_waiters",
    )

    def __init__(self, rate: float, capacity: float | None = None, *, burst: float = 1.0) -> None:
        rate = _check_rate(rate)
        if isinstance(burst, bool) or not isinstance(burst, int | float) or not 0 < burst < 1e9:
            raise InvalidArgument(f"burst must be a positive number of seconds; got {burst!r}")
        self._burst = float(burst)
        if capacity is not None and (
            isinstance(capacity, bool)
            or not isinstance(capacity, int | float)
            or not 1 <= capacity < math.inf
        ):
            raise InvalidArgument(
                f"capacity must be a finite number >= 1; got capacity={capacity!r}"
            )
        self._explicit_capacity = capacity is not None
        self._rate = rate
        self._interval = 1.0 / rate
        self._capacity = float(capacity) if capacity is not None else max(rate * burst, 1.0)
        # -inf means "full since forever": the first burst of up to `capacity` is immediate.
        self._tat = -math.inf
        # The latest grant handed out. Grants are monotonic by construction while the rate is
        # fixed; after set_rate() we clamp to this so a new caller never overtakes a sleeping one.
        self._last_grant = -math.inf
        # Counts reservations, so a cancelled waiter can tell whether it still holds the last one.
        self._seq = 0
        self._waiters = 0
        # Counts holds, so a sleeping waiter can tell that its slot was promised before one.
        self._holds = 0
        self._held_until = -math.inf
        self._acquired_total = 0
        self._waited_total = 0.0

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds (the burst size)."""
        return self._capacity

    def set_rate(self, rate: float) -> None:
        """Change the rate for every reservation made from now on.

        Tasks already sleeping in :meth:`acquire` keep their slot times. The capacity follows
        ``max(rate * burst, 1)`` unless it was given explicitly.

        :raises InvalidArgument: when ``rate <= 0``
        """
        rate = _check_rate(rate)
        old_span = self._capacity * self._interval
        self._rate = rate
        self._interval = 1.0 / rate
        if not self._explicit_capacity:
            self._capacity = max(rate * self._burst, 1.0)
        new_span = self._capacity * self._interval
        if new_span != old_span and self._tat > self._last_grant:
            # Keep how empty the bucket was right after the last promised slot, as a fraction
            # of a full refill, so the next slot follows it at the new spacing. With the default
            # capacity the span (capacity * T) is `burst` seconds at any rate >= 1 / burst, so
            # `_tat` stays.
            self._tat = self._last_grant + (self._tat - self._last_grant) * (new_span / old_span)
        # A waiter cancelled after this change must not restore state kept in the old units.
        self._seq += 1

    def hold(self, until: float) -> None:
        """Grant nothing before ``until`` (``anyio.current_time()`` units), and no burst then.

        The bucket is empty up to ``until``: the next token comes at ``until``, the following
        ones at the rate. Slots promised to sleeping tasks are withdrawn: each takes a new slot
        when it wakes, in the order they had, so the queue goes out at the current spacing and
        not at the pace it was promised at. A hold never shortens one made before.
        """
        if until < self._held_until:
            until = self._held_until
        self._held_until = until
        self._tat = until + (self._capacity - 1.0) * self._interval
        self._last_grant = until
        self._holds += 1
        # A waiter cancelled after this must not restore the state before it.
        self._seq += 1

    def _earliest(self, now: float, amount: int) -> float:
        # Comparisons rather than max(): this is the hot path, and a builtin call costs more.
        grant = self._tat - (self._capacity - amount) * self._interval
        if grant < self._last_grant:
            grant = self._last_grant
        return now if grant - now <= _EPSILON else grant

    def _reserve(self, now: float, amount: int) -> float:
        """Reserve ``amount`` tokens for the earliest possible time at or after ``now``.

        Pure bookkeeping (no clock, no event loop), so it can be property-tested directly.

        :returns: the grant time, ``>= now``
        """
        grant = self._earliest(now, amount)
        tat = self._tat
        self._tat = (tat if tat > grant else grant) + amount * self._interval
        self._last_grant = grant
        self._seq += 1
        return grant

    def _check_amount(self, amount: int) -> None:
        if type(amount) is int and 1 <= amount <= self._capacity:
            return  # the common case, checked first and cheaply

        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise InvalidArgument(f"amount must be a positive integer; got amount={amount!r}")
        if amount > self._capacity:
            raise InvalidArgument(
                f"amount must not exceed the capacity {self._capacity:g}; got amount={amount!r}"
            )

    def acquire_nowait(self, amount: int = 1) -> None:
        """Take ``amount`` tokens if they are available right now.

        :raises WouldBlock: when they are not (tasks already waiting come first)
        :raises InvalidArgument: when ``amount < 1`` or ``amount > capacity``
        """
        self._check_amount(amount)
        now = anyio.current_time()
        grant = self._earliest(now, amount)
        if grant > now:
            raise WouldBlock(grant - now)
        self._reserve(now, amount)
        self._acquired_total += amount

    async def acquire(self, amount: int = 1) -> float:
        """Take ``amount`` tokens, sleeping until the bucket can give them.

        The slot is reserved on entry, so callers are served in the order they arrive. If the
        task is cancelled while sleeping, its reservation is given back when no later one has
        been made; otherwise its slot stays unused (a cancelled waiter never speeds others up).

        :returns: the seconds this call waited
        :raises InvalidArgument: when ``amount < 1`` or ``amount > capacity``
        """
        self._check_amount(amount)
        # A task that is already cancelled must not consume tokens it will never use.
        await anyio.lowlevel.checkpoint_if_cancelled()
        now = anyio.current_time()
        undo = (self._tat, self._last_grant)
        grant = self._reserve(now, amount)
        if grant <= now:
            self._acquired_total += amount
            # Yield once, as anyio's primitives do, so a tight acquire loop cannot starve the
            # event loop; shielded because the tokens are already ours.
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return 0.0

        started = now
        self._waiters += 1
        try:
            while True:
                seq, holds = self._seq, self._holds
                try:
                    await anyio.sleep(grant - now)
                except BaseException:
                    if self._seq == seq:
                        self._tat, self._last_grant = undo
                        self._seq -= 1
                    raise
                if self._holds == holds:
                    break
                # A hold withdrew our slot while we slept (it was promised at the old pace):
                # take a new one.
                now = anyio.current_time()
                undo = (self._tat, self._last_grant)
                grant = self._reserve(now, amount)
                if grant <= now:
                    break
        finally:
            self._waiters -= 1

        waited = anyio.current_time() - started
        self._acquired_total += amount
        self._waited_total += waited
        return waited

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        return None

    def _tokens_at(self, now: float) -> float:
        debt = max(0.0, self._tat - now) * self._rate
        return max(0.0, self._capacity - debt)

    def statistics(self) -> BucketStatistics:
        """Return a snapshot of the bucket's state (must be called inside an event loop)."""
        return BucketStatistics(
            rate=self._rate,
            capacity=self._capacity,
            tokens_available=self._tokens_at(anyio.current_time()),
            waiters=self._waiters,
            acquired_total=self._acquired_total,
            waited_total_s=self._waited_total,
        )

    def __repr__(self) -> str:
        head = f"<TokenBucket rate={self._rate}/s capacity={self._capacity:g}"
        try:
            now = anyio.current_time()
        except RuntimeError:
            # Outside an event loop (a debugger, a log line at import time) there is no "now".
            return f"{head} waiters={self._waiters}>"
        next_free = (self._earliest(now, 1) - now) * 1000
        return (
            f"{head} tokens={self._tokens_at(now):.1f} waiters={self._waiters}"
            f" next_free_in={next_free:.1f}ms>"
        )
