"""LoadRunner on the mock transport in Trio's MockClock: intended times, ramp, rates, lateness,
the connection pool and the in-flight cap, retries, errors by code, worker shares."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from harness.load import LoadProgress, LoadRunner, parse_scenario
from harness.transport import Call, MockTransport, Reply


@pytest.fixture
def anyio_backend() -> object:
    """Trio with an autojumping MockClock: a 10 s run takes milliseconds, times are exact."""
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def scenario(**overrides: Any) -> Any:
    data: dict[str, Any] = {
        "rate": 10,
        "duration": 3,
        "operations": [{"operation": "iot:CreateThing", "params": {"thingName": "t-{n}"}}],
    }
    data.update(overrides)
    return parse_scenario(data)


class Recorder:
    """Answers after ``latency`` seconds; remembers when each call arrived and how many were
    in flight at once."""

    def __init__(self, latency: float = 0.0, reply: Reply | None = None) -> None:
        self.latency = latency
        self.reply = reply or Reply(200, output={})
        self.times: list[float] = []
        self.names: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, call: Call) -> Reply:
        self.times.append(anyio.current_time())
        self.names.append(str(call.params.get("thingName", call.operation)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.latency:
            await anyio.sleep(self.latency)
        self.in_flight -= 1
        return self.reply


class TestSchedule:
    @pytest.mark.anyio
    async def test_requests_are_sent_at_their_intended_times(self) -> None:
        handler = Recorder(latency=0.05)
        t0 = anyio.current_time()
        result = await LoadRunner(scenario(), MockTransport(handler)).run()
        assert [round(t - t0, 9) for t in handler.times] == [i / 10 for i in range(30)]
        assert handler.names[:3] == ["t-0", "t-1", "t-2"]
        assert result.scheduled == result.sent == result.sent_in_window == 30
        assert result.achieved_rate == pytest.approx(10.0)
        assert result.rate_ratio == pytest.approx(1.0)
        assert result.late_starts == 0 and result.lateness.max <= 1e-6  # the lowest bucket
        assert result.warnings() == []

    @pytest.mark.anyio
    async def test_latency_is_measured_from_the_intended_time(self) -> None:
        result = await LoadRunner(scenario(), MockTransport(Recorder(latency=0.05))).run()
        corrected = result.corrected_latency()
        assert corrected.count == 30
        assert corrected.min == pytest.approx(0.05, rel=1e-3)
        assert corrected.max == pytest.approx(0.05, rel=1e-3)
        assert result.total.stats.call_latency.max == pytest.approx(0.05, rel=1e-3)
        assert result.elapsed == pytest.approx(2.95)

    @pytest.mark.anyio
    async def test_a_ramp_follows_the_profile(self) -> None:
        plan = scenario(rate=100, duration=3, ramp="2s")
        handler = Recorder()
        t0 = anyio.current_time()
        result = await LoadRunner(plan, MockTransport(handler)).run()
        expected = [plan.profile.time_of(i) for i in range(plan.profile.total)]
        assert [t - t0 for t in handler.times] == pytest.approx(expected)
        # 100 requests during the ramp (the area of the triangle), then 100/s for 1 s.
        assert plan.profile.total == 200
        assert result.sent == 200 and result.rate_ratio == pytest.approx(1.0)
        per_second = [p.count for p in result.sends.points()]
        assert per_second == [25, 75, 100]

    @pytest.mark.anyio
    async def test_a_from_to_ramp(self) -> None:
        plan = scenario(rate=None, duration=2, ramp="10:30:2s")
        assert plan.profile.rate == 30 and plan.profile.ramp_from == 10
        handler = Recorder()
        await LoadRunner(plan, MockTransport(handler)).run()
        assert len(handler.times) == 40  # the mean of 10 and 30, for 2 s


class TestConnectionPool:
    @pytest.mark.anyio
    async def test_the_pool_caps_requests_on_the_wire(self) -> None:
        handler = Recorder(latency=1.0)
        plan = scenario(rate=10, duration=2, connections=2)
        result = await LoadRunner(plan, MockTransport(handler)).run()
        assert handler.max_in_flight == 2
        assert result.sent == 20
        # Two connections at 1 s per request serve 2/s of the 10/s asked for.
        assert result.sent_in_window == 4  # at 0 s and 1 s; the next two at 2 s are past the end
        assert result.rate_ratio == pytest.approx(0.2)
        assert result.late_starts == 18
        assert any("did not keep up" in w for w in result.warnings())
        # Raw latency is the service time; corrected adds the wait for a connection.
        assert result.total.stats.call_latency.max == pytest.approx(1.0, rel=1e-3)
        assert result.corrected_latency().max == pytest.approx(10.0 - 1.8, rel=1e-3)

    @pytest.mark.anyio
    async def test_the_in_flight_cap_holds_back_the_scheduler_without_losing_requests(
        self,
    ) -> None:
        handler = Recorder(latency=1.0)
        plan = scenario(rate=10, duration=2, connections=2, max_in_flight=4)
        result = await LoadRunner(plan, MockTransport(handler)).run()
        assert result.max_backlog == 4
        assert result.backlog_waits > 0
        assert result.sent == result.total.stats.calls == 20
        # The requests launched late keep their intended times: the same correction as above.
        assert result.corrected_latency().max == pytest.approx(8.2, rel=1e-3)


class TestOutcomes:
    @pytest.mark.anyio
    async def test_errors_are_counted_by_code_without_retries(self) -> None:
        throttled = Reply(400, error_code="ThrottlingException")
        result = await LoadRunner(scenario(), MockTransport(Recorder(reply=throttled))).run()
        stats = result.operations["iot.CreateThing"].stats
        assert stats.failures == 30 and stats.errors == {"ThrottlingException": 30}
        assert stats.attempts == 30 and stats.retries == 0 and stats.throttles == 30
        assert result.call_counts() == (30, 30)

    @pytest.mark.anyio
    async def test_retries_are_opt_in(self) -> None:
        seen: list[int] = []

        def handler(call: Call) -> Reply:
            seen.append(1)
            if len(seen) % 2:
                return Reply(500, error_code="InternalFailureException")
            return Reply(200, output={})

        plan = scenario(duration=1, retries=2)
        result = await LoadRunner(plan, MockTransport(handler), seed=1).run()
        stats = result.total.stats
        assert stats.successes == 10 and stats.failures == 0
        assert stats.attempts == 20 and stats.retries == 10
        assert stats.attempt_errors == {"InternalFailureException": 10}

    @pytest.mark.anyio
    async def test_a_mix_follows_the_weights(self) -> None:
        plan = scenario(
            rate=100,
            duration=10,
            operations=[
                {"operation": "greengrassv2:ListDeployments", "weight": 20},
                {"operation": "iot:CreateThing", "weight": 80, "params": {"thingName": "x{n}"}},
            ],
        )
        result = await LoadRunner(plan, MockTransport(Recorder())).run()
        calls = {name: op.stats.calls for name, op in result.operations.items()}
        assert calls == {"greengrassv2.ListDeployments": 200, "iot.CreateThing": 800}

    @pytest.mark.anyio
    async def test_workers_take_every_nth_request_of_one_schedule(self) -> None:
        handler = Recorder()
        t0 = anyio.current_time()
        plan = scenario()
        await LoadRunner(plan, MockTransport(handler), worker=1, workers=3).run(t0)
        assert handler.names == [f"t-{i}" for i in range(1, 30, 3)]
        assert [round(t - t0, 9) for t in handler.times] == [i / 10 for i in range(1, 30, 3)]

    @pytest.mark.anyio
    async def test_progress_is_reported_every_second(self) -> None:
        seen: list[LoadProgress] = []
        plan = scenario(duration=3)
        await LoadRunner(plan, MockTransport(Recorder(0.05)), progress=seen.append).run()
        assert [round(p.elapsed) for p in seen] == [1, 2]
        assert seen[0].sent == 10 and seen[0].completed == 10
