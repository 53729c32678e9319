"""AdaptiveRate: convergence against a simulated quota, cooldown, recovery, floor and ceiling."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

import anyio
import pytest
from trio.testing import MockClock

from harness.errors import InvalidArgument
from harness.throttle import AdaptiveRate, AdaptiveStatistics, TokenBucket

BOTH = pytest.mark.parametrize("anyio_backend", ["trio-mock", "asyncio"], indirect=True)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Trio with an autojumping MockClock by default: a 60 s run takes a fraction of a second."""
    name = getattr(request, "param", "trio-mock")
    if name == "trio-mock":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return name


class QuotaServer:
    """The service side: a plain token bucket (not GCRA, on purpose) of ``quota`` per second with
    one second of burst, answering "throttled" when it is empty. Throttled calls cost nothing."""

    def __init__(self, quota: float) -> None:
        self.quota = quota
        self.tokens = quota
        self.updated = 0.0

    def admit(self, now: float) -> bool:
        self.tokens = min(self.quota, self.tokens + (now - self.updated) * self.quota)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Run:
    """What a simulated client saw: ``(time, admitted)`` per call."""

    calls: list[tuple[float, bool]] = field(default_factory=list)

    def rate(self, start: float, end: float) -> float:
        return sum(ok for t, ok in self.calls if start <= t < end) / (end - start)

    def throttled(self, start: float, end: float) -> int:
        return sum(not ok for t, ok in self.calls if start <= t < end)

    def calls_in(self, start: float, end: float) -> int:
        return sum(start <= t < end for t, _ in self.calls)


async def simulate(
    controller: AdaptiveRate,
    bucket: TokenBucket,
    quota: float,
    *,
    seconds: float = 60.0,
    workers: int = 20,
    latency: float = 0.02,
    tell_send_time: bool = True,
) -> Run:
    """``workers`` tasks call a :class:`QuotaServer` through ``bucket`` until ``seconds`` pass; the
    server decides when a call is sent, the client hears back ``latency`` later."""
    server, run = QuotaServer(quota), Run()
    start = anyio.current_time()

    async def worker() -> None:
        while anyio.current_time() - start < seconds:
            await bucket.acquire()
            sent = anyio.current_time()
            admitted = server.admit(sent)
            await anyio.sleep(latency)
            run.calls.append((anyio.current_time() - start, admitted))
            if admitted:
                controller.on_success(sent if tell_send_time else None)
            else:
                controller.on_throttle(sent if tell_send_time else None)

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return run


class TestConvergence:
    @pytest.mark.anyio
    @pytest.mark.parametrize("quota", [10.0, 25.0, 100.0])
    async def test_start_at_ten_times_the_quota_ends_near_it(self, quota: float) -> None:
        bucket = TokenBucket(10 * quota)
        controller = AdaptiveRate(bucket, ceiling=10 * quota)
        run = await simulate(controller, bucket, quota)
        achieved, throttled = run.rate(30, 60), run.throttled(30, 60)
        print(
            f"Q={quota:g}: achieved {achieved / quota:.2f} Q over 30-60 s, {throttled} of"
            f" {run.calls_in(30, 60)} calls throttled there, {controller.throttles} decreases"
        )
        assert 0.6 * quota <= achieved <= 1.3 * quota
        # Every 5 s window after the first holds the rate: no collapse after a throttle burst.
        assert all(0.6 * quota <= run.rate(t, t + 5) <= 1.3 * quota for t in range(5, 60, 5))
        # The server's one-second burst lets each CUBIC probe overshoot before it is told, so
        # a probe costs a few throttled calls; that stays a small fraction of the traffic.
        assert throttled <= 0.1 * run.calls_in(30, 60)

    @pytest.mark.anyio
    async def test_without_a_cooldown_a_throttle_storm_collapses_the_rate(self) -> None:
        # What the cooldown is for: botocore's limiter cuts once per throttled response, so the
        # requests that were in flight together drive the rate to the floor again and again.
        bucket = TokenBucket(250.0)
        controller = AdaptiveRate(bucket, ceiling=250.0, cooldown=0.0)
        run = await simulate(controller, bucket, 25.0, tell_send_time=False)
        assert run.rate(30, 60) < 0.7 * 25.0  # 12-15 TPS, where the defaults hold 25


class TestCooldown:
    @pytest.mark.anyio
    async def test_fifty_simultaneous_throttles_cause_one_decrease(self) -> None:
        bucket = TokenBucket(100.0)
        controller = AdaptiveRate(bucket, ceiling=100.0)
        applied = [controller.on_throttle() for _ in range(50)]
        assert applied == [True] + [False] * 49
        assert controller.throttles == 1
        assert controller.rate == bucket.rate == pytest.approx(70.0)

    @pytest.mark.anyio
    async def test_a_throttle_after_the_cooldown_counts_again(self) -> None:
        controller = AdaptiveRate(TokenBucket(100.0), ceiling=100.0, cooldown=2.0)
        controller.on_throttle()
        await anyio.sleep(1.9)
        assert not controller.on_throttle()
        await anyio.sleep(0.1)
        assert controller.on_throttle()
        # No success in between: the cut rate is still far too high, and the cut goes deeper.
        assert controller.rate == pytest.approx(100 * 0.7 * 0.7**2)

    @pytest.mark.anyio
    async def test_default_cooldown_is_one_interval_at_low_rates(self) -> None:
        controller = AdaptiveRate(TokenBucket(1.0), ceiling=1.0, floor=0.1)
        controller.on_throttle()  # 0.7/s: one interval is ~1.43 s
        await anyio.sleep(1.2)
        assert not controller.on_throttle()
        await anyio.sleep(0.3)
        assert controller.on_throttle()


class TestRecovery:
    @BOTH
    @pytest.mark.anyio
    async def test_rate_climbs_back_to_the_ceiling(self) -> None:
        bucket = TokenBucket(50.0)
        controller = AdaptiveRate(bucket, ceiling=50.0, scale=4000.0)  # fast, for real clocks
        controller.on_throttle()
        assert controller.rate == pytest.approx(35.0)
        seen = [controller.rate]
        while controller.rate < 50.0:
            await anyio.sleep(0.01)
            controller.on_success()
            seen.append(controller.rate)
        assert seen == sorted(seen)
        assert bucket.rate == 50.0

    @pytest.mark.anyio
    async def test_cubic_is_flat_near_the_last_throttled_rate(self) -> None:
        controller = AdaptiveRate(TokenBucket(100.0), ceiling=200.0)
        controller.on_throttle()
        k = math.cbrt(100.0 * 0.3 / 0.4)
        await anyio.sleep(k)
        controller.on_success()
        assert controller.rate == pytest.approx(100.0)
        await anyio.sleep(2.0)
        controller.on_success()
        assert controller.rate == pytest.approx(100.0 + 0.4 * 8)

    @pytest.mark.anyio
    async def test_bucket_is_told_only_about_changes_over_one_percent(self) -> None:
        calls: list[float] = []

        class Spy(TokenBucket):
            __slots__ = ()

            def set_rate(self, rate: float) -> None:
                calls.append(rate)
                super().set_rate(rate)

        controller = AdaptiveRate(Spy(100.0), ceiling=100.0)
        controller.on_throttle()
        for _ in range(2000):
            await anyio.sleep(0.005)
            controller.on_success()
        assert controller.rate == 100.0
        assert calls[-1] == 100.0
        assert 2 < len(calls) < 60
        for before, after in itertools.pairwise(calls[1:-1]):
            assert abs(after - before) > 0.01 * before

    @pytest.mark.anyio
    async def test_success_below_ceiling_without_throttle_probes_upwards(self) -> None:
        bucket = TokenBucket(10.0)
        controller = AdaptiveRate(bucket, ceiling=20.0)
        controller.on_success()
        assert controller.rate == 10.0
        await anyio.sleep(3.0)
        controller.on_success()
        # The cubic's constant scales with the rate: 0.4 at 100 TPS, 0.04 at 10.
        assert controller.rate == pytest.approx(10.0 + 0.04 * 27)
        await anyio.sleep(4.0)
        controller.on_success()
        assert controller.rate == pytest.approx(20.0)  # 10 + 0.04 * 343 is above the ceiling


class TestBounds:
    @pytest.mark.anyio
    async def test_floor_is_respected(self) -> None:
        bucket = TokenBucket(10.0)
        controller = AdaptiveRate(bucket, ceiling=10.0, floor=2.0, cooldown=0.0)
        for _ in range(30):
            controller.on_throttle()
            await anyio.sleep(0.001)
            assert controller.rate >= 2.0
        assert controller.rate == bucket.rate == 2.0
        assert controller.throttles == 30

    @pytest.mark.anyio
    async def test_lower_ceiling_caps_the_rate_at_once(self) -> None:
        bucket = TokenBucket(100.0)
        controller = AdaptiveRate(bucket, ceiling=100.0)
        controller.ceiling = 40.0
        assert controller.rate == bucket.rate == 40.0
        controller.ceiling = 80.0  # raising it probes upwards from 40, slowly at first
        controller.on_success()
        assert controller.rate == 40.0
        await anyio.sleep(1.0)
        controller.on_success()
        assert 40.0 < controller.rate < 41.0

    def test_bucket_above_the_ceiling_is_brought_down(self) -> None:
        bucket = TokenBucket(500.0)
        controller = AdaptiveRate(bucket, ceiling=100.0)
        assert controller.rate == bucket.rate == 100.0

    @pytest.mark.anyio
    async def test_reset(self) -> None:
        bucket = TokenBucket(100.0)
        controller = AdaptiveRate(bucket, ceiling=100.0)
        controller.on_throttle()
        controller.reset()
        assert controller.rate == bucket.rate == 100.0
        assert controller.on_throttle()  # the cooldown is forgotten too
        controller.reset(30.0)
        assert bucket.rate == 30.0


class TestIntrospection:
    @pytest.mark.anyio
    async def test_statistics_and_repr(self) -> None:
        controller = AdaptiveRate(TokenBucket(10.0), ceiling=10.0, floor=1.0)
        assert controller.statistics() == AdaptiveStatistics(
            rate=10.0, ceiling=10.0, floor=1.0, throttles=0, last_throttle_at=None
        )
        await anyio.sleep(5.0)
        controller.on_throttle()
        stats = controller.statistics()
        assert (stats.rate, stats.throttles, stats.last_throttle_at) == (7.0, 1, 5.0)
        assert repr(controller) == "<AdaptiveRate rate=7/s ceiling=10 floor=1 throttles=1>"


class TestInvalidArguments:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"ceiling": 0}, "ceiling=0"),
            ({"ceiling": 10, "floor": 0}, "floor=0"),
            ({"ceiling": 10, "floor": 20}, "floor=20"),
            ({"ceiling": 10, "beta": 1.0}, "beta=1.0"),
            ({"ceiling": 10, "scale": -1}, "scale=-1"),
            ({"ceiling": 10, "cooldown": -1.0}, "cooldown=-1.0"),
        ],
    )
    def test_constructor(self, kwargs: dict[str, float], message: str) -> None:
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            AdaptiveRate(TokenBucket(10.0), **kwargs)

    def test_ceiling_setter(self) -> None:
        controller = AdaptiveRate(TokenBucket(10.0), ceiling=10.0)
        with pytest.raises(InvalidArgument, match=re.escape("ceiling=-5")):
            controller.ceiling = -5
