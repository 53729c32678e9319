"""Throttle storms on a mock clock: holds, one cut per round trip, deep cuts, tiny rates, and
convergence from starts far above and below the quota, at latencies from 1 ms to 300 ms.

The real thing, ``harness run`` against ``harness emulator --throttle aws``, is in
``tests/cli/test_throttle_storm.py``; the figures for 3,000 items come from
``perf/throttle_storm.py``.
"""

from __future__ import annotations

import anyio
import pytest
from test_adaptive import simulate
from trio.testing import MockClock

from harness.errors import InvalidArgument
from harness.throttle import AdaptiveRate, BucketRegistry, TokenBucket


@pytest.fixture
def anyio_backend() -> object:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class TestHold:
    @pytest.mark.anyio
    async def test_nothing_is_granted_before_the_hold_and_no_burst_after(self) -> None:
        bucket = TokenBucket(10.0)  # full: 10 tokens at once, without a hold
        bucket.hold(anyio.current_time() + 2.0)
        times = []
        for _ in range(3):
            await bucket.acquire()
            times.append(anyio.current_time())
        assert times == pytest.approx([2.0, 2.1, 2.2])

    @pytest.mark.anyio
    async def test_a_shorter_hold_never_shortens_a_longer_one(self) -> None:
        bucket = TokenBucket(10.0)
        bucket.hold(5.0)
        bucket.hold(1.0)
        await bucket.acquire()
        assert anyio.current_time() == pytest.approx(5.0)

    @pytest.mark.anyio
    async def test_queued_waiters_are_respaced_at_the_cut_rate(self) -> None:
        # Ten tasks queue at 100/s (slots 10 ms apart); at 5 ms the rate is cut to 10/s and the
        # bucket held: the queue then goes out 100 ms apart, not at the pace it was promised.
        bucket = TokenBucket(100.0, capacity=1)
        await bucket.acquire()
        times: list[float] = []

        async def take() -> None:
            await bucket.acquire()
            times.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(take)
            await anyio.sleep(0.005)
            bucket.set_rate(10.0)
            bucket.hold(anyio.current_time() + 0.1)
        assert times == pytest.approx([0.105 + 0.1 * i for i in range(10)])

    @pytest.mark.anyio
    async def test_a_waiter_cancelled_after_a_hold_restores_nothing(self) -> None:
        bucket = TokenBucket(1.0, capacity=1)
        await bucket.acquire()
        with anyio.move_on_after(0.5):
            await bucket.acquire()  # reserved for t=1, then the hold below, then cancelled
        bucket.hold(3.0)
        with anyio.move_on_after(0.1):
            await bucket.acquire()
        await bucket.acquire()
        assert anyio.current_time() >= 3.0


class TestCuts:
    @pytest.mark.anyio
    async def test_throttles_of_requests_sent_before_a_cut_are_its_echo(self) -> None:
        controller = AdaptiveRate(TokenBucket(100.0), ceiling=100.0)
        sent = anyio.current_time()
        await anyio.sleep(0.1)
        assert controller.on_throttle(sent)
        # 63 more of the requests that were in flight with it: one cut for all of them.
        assert not any(controller.on_throttle(sent) for _ in range(63))
        assert controller.rate == pytest.approx(70.0)

    @pytest.mark.anyio
    async def test_a_throttle_sent_after_the_cut_cuts_again_and_deeper(self) -> None:
        controller = AdaptiveRate(TokenBucket(1000.0), ceiling=1000.0)
        assert controller.on_throttle(anyio.current_time())
        await anyio.sleep(0.01)
        # No request sent at 700/s got through: still far too fast, cut by beta**2.
        assert controller.on_throttle(anyio.current_time())
        assert controller.rate == pytest.approx(1000 * 0.7 * 0.49)

    @pytest.mark.anyio
    async def test_a_success_at_the_cut_rate_makes_the_next_cut_gentle(self) -> None:
        controller = AdaptiveRate(TokenBucket(100.0), ceiling=100.0)
        assert controller.on_throttle(anyio.current_time())
        await anyio.sleep(0.01)
        controller.on_success(anyio.current_time())
        rate = controller.rate
        await anyio.sleep(0.01)
        assert controller.on_throttle(anyio.current_time())
        assert controller.rate == pytest.approx(rate * 0.7)

    @pytest.mark.anyio
    async def test_a_cut_empties_the_bucket(self) -> None:
        bucket = TokenBucket(100.0)  # full: 100 tokens
        controller = AdaptiveRate(bucket, ceiling=100.0)
        controller.on_throttle(anyio.current_time())
        await bucket.acquire()
        assert anyio.current_time() == pytest.approx(1 / 70.0)


class TestTinyRates:
    @pytest.mark.anyio
    @pytest.mark.parametrize("tps", [0.01, 0.1, 0.49, 0.5])
    async def test_any_positive_rate_works(self, tps: float) -> None:
        registry = BucketRegistry()
        registry.override("iot", "CreateThing", tps)  # below the default floor of 0.5
        key = ("a", "us-east-1", "iot", "CreateThing")
        bucket, controller = registry.bucket(*key), registry.controller(*key)
        assert controller is not None
        assert (bucket.rate, controller.ceiling) == (tps, tps)
        await bucket.acquire()
        await bucket.acquire()
        assert anyio.current_time() == pytest.approx(1 / tps)
        controller.on_throttle(anyio.current_time())
        assert 0 < controller.rate <= tps

    def test_an_explicit_floor_above_the_ceiling_is_still_refused(self) -> None:
        with pytest.raises(InvalidArgument, match=r"floor=0\.5"):
            AdaptiveRate(TokenBucket(0.01), ceiling=0.01, floor=0.5)


def _run(quota: float, start: float, latency: float, seconds: float) -> tuple[float, int, int]:
    """(achieved rate after 5 s, throttled calls after 5 s, calls after 5 s) of a simulation."""
    import trio

    out: list[tuple[float, int, int]] = []

    async def main() -> None:
        bucket = TokenBucket(start)
        controller = AdaptiveRate(bucket, ceiling=start)
        run = await simulate(
            controller, bucket, quota, seconds=seconds, workers=64, latency=latency
        )
        out.append((run.rate(5, seconds), run.throttled(5, seconds), run.calls_in(5, seconds)))

    trio.run(main, clock=MockClock(autojump_threshold=0))
    return out[0]


class TestConvergence:
    @pytest.mark.parametrize(
        ("quota", "multiple", "latency"),
        [
            (5.0, 10.0, 0.1),
            (20.0, 20.0, 0.3),
            (20.0, 0.5, 0.1),
            (100.0, 10.0, 0.001),
            (100.0, 10.0, 0.3),
            (100.0, 3.0, 0.1),
        ],
    )
    def test_from_any_start_the_rate_settles_within_seconds(
        self, quota: float, multiple: float, latency: float
    ) -> None:
        start = quota * multiple
        achieved, throttled, calls = _run(quota, start, latency, seconds=25.0)
        # What 64 workers can reach at this latency, at most the start and the quota.
        target = min(start, quota, 64 / latency)
        # After 5 s: at the quota (or at a start below it), and few throttles.
        assert 0.9 * target <= achieved <= 1.1 * quota, (achieved, target)
        assert throttled <= 0.05 * calls + 3, (throttled, calls)
