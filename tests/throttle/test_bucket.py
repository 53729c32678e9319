"""TokenBucket: rate and burst in mock time, FIFO, nowait, cancellation, set_rate, the GCRA invariant."""

from __future__ import annotations

import math
import re

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

from harness.errors import HarnessError, InvalidArgument
from harness.throttle import BucketStatistics, TokenBucket, WouldBlock

BOTH = pytest.mark.parametrize("anyio_backend", ["trio-mock", "asyncio"], indirect=True)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Trio with an autojumping MockClock by default: a 60 s wait takes microseconds."""
    name = getattr(request, "param", "trio-mock")
    if name == "trio-mock":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return name


class TestRate:
    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("rate", "capacity", "n"), [(10.0, None, 25), (10.0, 5, 25), (0.5, None, 4), (100.0, 1, 50)]
    )
    async def test_n_acquires_take_n_minus_capacity_over_rate(
        self, rate: float, capacity: float | None, n: int
    ) -> None:
        bucket = TokenBucket(rate, capacity)
        start = anyio.current_time()
        for _ in range(n):
            await bucket.acquire()
        assert anyio.current_time() - start == pytest.approx((n - bucket.capacity) / rate)

    @BOTH
    @pytest.mark.anyio
    async def test_concurrent_acquires_are_spaced_at_the_rate(self) -> None:
        bucket = TokenBucket(200.0, capacity=2)
        done: list[float] = []

        async def one() -> None:
            await bucket.acquire()
            done.append(anyio.current_time())

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
        assert len(done) == 10
        # 2 immediately, then one every 5 ms: the last at 40 ms (a real loop may be late, never
        # early beyond its timer resolution).
        assert 0.039 <= max(done) - start < 0.5
        assert bucket.statistics().acquired_total == 10

    @pytest.mark.anyio
    async def test_burst_up_to_capacity_is_immediate(self) -> None:
        bucket = TokenBucket(100.0)
        waits = [await bucket.acquire() for _ in range(100)]
        assert waits == [0.0] * 100
        assert await bucket.acquire() == pytest.approx(0.01)

    @pytest.mark.anyio
    async def test_amount_takes_several_tokens(self) -> None:
        bucket = TokenBucket(10.0, capacity=4)
        assert await bucket.acquire(4) == 0.0
        assert await bucket.acquire(3) == pytest.approx(0.3)

    @BOTH
    @pytest.mark.anyio
    async def test_async_with_takes_one_token(self) -> None:
        bucket = TokenBucket(1.0, capacity=1)
        async with bucket:
            pass
        with pytest.raises(WouldBlock):
            bucket.acquire_nowait()


class TestFifo:
    @pytest.mark.anyio
    async def test_waiters_are_served_in_arrival_order(self) -> None:
        bucket = TokenBucket(5.0, capacity=2)
        order: list[int] = []

        async def one(i: int, amount: int) -> None:
            await bucket.acquire(amount)
            order.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i, 2 if i % 3 == 0 else 1)
                # Each task must have reserved before the next one starts.
                await wait_all_tasks_blocked()
        assert order == list(range(8))

    @pytest.mark.anyio
    async def test_nowait_does_not_overtake_a_waiter(self) -> None:
        bucket = TokenBucket(1.0, capacity=2)
        bucket.acquire_nowait(2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bucket.acquire)
            await wait_all_tasks_blocked()
            await anyio.sleep(0.5)
            with pytest.raises(WouldBlock):
                bucket.acquire_nowait()  # 0.5 token has refilled, but it is the waiter's


class TestNowait:
    @pytest.mark.anyio
    async def test_raises_would_block_when_empty(self) -> None:
        bucket = TokenBucket(4.0, capacity=3)
        for _ in range(3):
            bucket.acquire_nowait()
        with pytest.raises(WouldBlock) as info:
            bucket.acquire_nowait()
        assert isinstance(info.value, HarnessError)
        assert info.value.delay == pytest.approx(0.25)
        await anyio.sleep(0.25)
        bucket.acquire_nowait()
        assert bucket.statistics().acquired_total == 4


class TestCancellation:
    @pytest.mark.anyio
    async def test_cancelled_last_waiter_gives_its_slot_back(self) -> None:
        bucket = TokenBucket(1.0, capacity=1)
        await bucket.acquire()
        with anyio.move_on_after(0.5):
            await bucket.acquire()  # its slot was t=1
        assert bucket.statistics().waiters == 0
        start = anyio.current_time()
        assert await bucket.acquire() == pytest.approx(0.5)  # t=1 again, not t=2
        assert anyio.current_time() - start == pytest.approx(0.5)

    @pytest.mark.anyio
    async def test_cancelled_inner_waiter_leaves_later_slots_alone(self) -> None:
        bucket = TokenBucket(1.0, capacity=1)
        await bucket.acquire()
        woke: list[float] = []

        async def later() -> None:
            await bucket.acquire()
            woke.append(anyio.current_time())

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_acquire_in, scope, bucket)
            await wait_all_tasks_blocked()
            tg.start_soon(later)
            await wait_all_tasks_blocked()
            scope.cancel()
        assert woke == [pytest.approx(2.0)]

    @pytest.mark.anyio
    async def test_already_cancelled_task_takes_nothing(self) -> None:
        bucket = TokenBucket(1.0, capacity=1)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await bucket.acquire()
        assert bucket.statistics().acquired_total == 0
        bucket.acquire_nowait()


async def _acquire_in(scope: anyio.CancelScope, bucket: TokenBucket) -> None:
    with scope:
        await bucket.acquire()


class TestSetRate:
    @pytest.mark.anyio
    async def test_set_rate_changes_later_spacing(self) -> None:
        bucket = TokenBucket(10.0, capacity=1)
        for _ in range(3):
            await bucket.acquire()
        t0 = anyio.current_time()
        assert t0 == pytest.approx(0.2)
        bucket.set_rate(100.0)
        assert bucket.capacity == 1  # explicit capacity stays
        for _ in range(5):
            await bucket.acquire()
        # The next slot follows the last one (t0) at the new spacing, not the old one.
        assert anyio.current_time() - t0 == pytest.approx(5 * 0.01)

    @pytest.mark.anyio
    @pytest.mark.parametrize("capacity", [None, 100, 1])
    async def test_decrease_spaces_the_next_slot_at_the_new_interval(
        self, capacity: float | None
    ) -> None:
        bucket = TokenBucket(100.0, capacity)
        while True:
            if await bucket.acquire() > 0:
                break
        last = anyio.current_time()
        bucket.set_rate(10.0)
        await bucket.acquire()
        assert anyio.current_time() - last == pytest.approx(0.1)

    @pytest.mark.anyio
    async def test_capacity_follows_rate_unless_explicit(self) -> None:
        bucket = TokenBucket(50.0)
        bucket.set_rate(0.5)
        assert (bucket.rate, bucket.capacity) == (0.5, 1.0)
        bucket.set_rate(20)
        assert bucket.capacity == 20.0

    @pytest.mark.anyio
    async def test_reserved_slots_keep_their_times(self) -> None:
        bucket = TokenBucket(1.0, capacity=1)
        await bucket.acquire()
        woke: list[float] = []

        async def one() -> None:
            await bucket.acquire()
            woke.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            await wait_all_tasks_blocked()
            bucket.set_rate(1000.0)
            tg.start_soon(one)  # reserved after the sleeping one: never overtakes it
        assert woke == [pytest.approx(1.0), pytest.approx(1.001)]


class TestIntrospection:
    @pytest.mark.anyio
    async def test_statistics(self) -> None:
        bucket = TokenBucket(10.0, capacity=4)
        bucket.acquire_nowait(2)
        stats = bucket.statistics()
        assert stats == BucketStatistics(
            rate=10.0,
            capacity=4.0,
            tokens_available=pytest.approx(2.0),  # type: ignore[arg-type]
            waiters=0,
            acquired_total=2,
            waited_total_s=0.0,
        )
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(bucket.acquire)
            await wait_all_tasks_blocked()
            stats = bucket.statistics()
            assert (stats.waiters, stats.tokens_available) == (2, 0.0)
        stats = bucket.statistics()
        assert stats.waiters == 0
        assert stats.acquired_total == 6
        assert stats.waited_total_s == pytest.approx(0.1 + 0.2)
        with pytest.raises(AttributeError):
            stats.rate = 1.0  # type: ignore[misc]

    @pytest.mark.anyio
    async def test_repr_shows_live_state(self) -> None:
        bucket = TokenBucket(100.0)
        for _ in range(88):
            bucket.acquire_nowait()
        await anyio.sleep(0.005)
        assert repr(bucket) == (
            "<TokenBucket rate=100.0/s capacity=100 tokens=12.5 waiters=0 next_free_in=0.0ms>"
        )
        async with anyio.create_task_group() as tg:
            for _ in range(15):
                tg.start_soon(bucket.acquire)
            await wait_all_tasks_blocked()
            text = repr(bucket)
            assert re.fullmatch(
                r"<TokenBucket rate=100\.0/s capacity=100 tokens=0\.0 waiters=3"
                r" next_free_in=35\.0ms>",
                text,
            ), text

    def test_repr_outside_an_event_loop(self) -> None:
        assert repr(TokenBucket(0.5)) == "<TokenBucket rate=0.5/s capacity=1 waiters=0>"

    def test_slots(self) -> None:
        with pytest.raises(AttributeError):
            TokenBucket(1.0).extra = 1  # type: ignore[attr-defined]


class TestInvalidArguments:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"rate": 0}, "rate=0"),
            ({"rate": -1.0}, "rate=-1.0"),
            ({"rate": math.inf}, "rate=inf"),
            ({"rate": math.nan}, "rate=nan"),
            ({"rate": True}, "rate=True"),
            ({"rate": 1.0, "capacity": 0.5}, "capacity=0.5"),
            ({"rate": 1.0, "capacity": math.inf}, "capacity=inf"),
        ],
    )
    def test_constructor(self, kwargs: dict[str, float], message: str) -> None:
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            TokenBucket(**kwargs)

    @pytest.mark.anyio
    @pytest.mark.parametrize("amount", [0, -1, 6, 1.5])
    async def test_amount(self, amount: int) -> None:
        bucket = TokenBucket(5.0)
        with pytest.raises(InvalidArgument, match=re.escape(f"amount={amount!r}")):
            await bucket.acquire(amount)
        with pytest.raises(InvalidArgument, match=re.escape(f"amount={amount!r}")):
            bucket.acquire_nowait(amount)

    def test_set_rate(self) -> None:
        with pytest.raises(InvalidArgument, match="rate=0"):
            TokenBucket(1.0).set_rate(0)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[float, float, list[tuple[float, int]]]:
    rate = draw(st.floats(0.1, 1000.0))
    capacity = draw(st.floats(1.0, 50.0))
    gaps = draw(st.lists(st.floats(0.0, 3.0 / rate), min_size=1, max_size=120))
    amounts = st.integers(1, max(1, int(capacity)))
    now, calls = 0.0, []
    for gap in gaps:
        now += gap
        calls.append((now, draw(amounts)))
    return rate, capacity, calls


class TestGcraInvariant:
    @given(schedules())
    def test_no_window_holds_more_than_capacity_plus_rate_times_width(
        self, schedule: tuple[float, float, list[tuple[float, int]]]
    ) -> None:
        rate, capacity, calls = schedule
        bucket = TokenBucket(rate, capacity)
        grants = [(bucket._reserve(now, amount), amount) for now, amount in calls]
        times = [g for g, _ in grants]
        assert all(g >= now for g, (now, _) in zip(times, calls, strict=True))
        assert times == sorted(times)  # FIFO: nobody overtakes an earlier caller
        for i, start in enumerate(times):
            taken = 0
            for end, amount in grants[i:]:
                taken += amount
                assert taken <= capacity + (end - start) * rate + 1e-6

    @given(schedules(), st.floats(0.1, 1000.0), st.integers(0, 119))
    def test_grants_stay_ordered_across_set_rate(
        self, schedule: tuple[float, float, list[tuple[float, int]]], new_rate: float, at: int
    ) -> None:
        rate, _, calls = schedule
        bucket = TokenBucket(rate)
        times = []
        for i, (now, _) in enumerate(calls):
            if i == at:
                bucket.set_rate(new_rate)
            times.append(bucket._reserve(now, 1))
        assert times == sorted(times)

    @pytest.mark.anyio
    async def test_reserve_matches_acquire(self) -> None:
        pure, real = TokenBucket(3.0, capacity=2), TokenBucket(3.0, capacity=2)
        for _ in range(7):
            now = anyio.current_time()
            assert now + await real.acquire() == pytest.approx(pure._reserve(now, 1))
