"""The engine over a MockTransport: preflight, retries, idempotency, streaming, lists, events.

Time-dependent tests run on trio with an autojumping MockClock: backoff and rate waits take no
real time, and ``anyio.current_time()`` measures them exactly.
"""

from __future__ import annotations

import itertools
import random
import re
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from harness.engine import (
    Engine,
    Event,
    ItemFinished,
    Job,
    PreflightFinished,
    RunFinished,
    RunStarted,
    RunSummary,
    StepFinished,
    StepStarted,
    Throttled,
    derive_token,
    parse_job,
)
from harness.errors import JobError
from harness.model import load_service
from harness.throttle import DEFAULT_HEADROOM, BucketRegistry
from harness.transport import Call, MockTransport, Reply

ARN = "arn:aws:iot:us-east-1:123456789012:thing/{}"


@pytest.fixture
def anyio_backend() -> object:
    """Trio with an autojumping MockClock: backoff and rate waits take no real time."""
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


# ------------------------------------------------------------------------------------ helpers
def make_job(*steps: dict[str, Any], **top: Any) -> Job:
    return parse_job({"name": "test-job", "steps": list(steps), **top})


def things(n: int = 5, name: str = "things", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": "iot",
        "operation": "CreateThing",
        "items": {"count": n},
        "params": {"thingName": "dev-{{ index }}"},
        **extra,
    }


def membership(upstream: str = "things", name: str = "membership", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": "iot",
        "operation": "AddThingToThingGroup",
        "items": {"from": upstream},
        "params": {"thingArn": "{{ item.thingArn }}", "thingGroupName": "g-{{ item.index % 3 }}"},
        **extra,
    }


def answer(call: Call) -> Reply:
    """What a healthy service answers."""
    if call.operation == "CreateThing":
        name = call.params["thingName"]
        return Reply(
            200, output={"thingName": name, "thingArn": ARN.format(name), "thingId": f"id-{name}"}
        )
    return Reply(200, output={})


def failure(code: str, status: int, retry_after: float | None = None) -> Reply:
    return Reply(status, error_code=code, error_message=f"{code} says no", retry_after=retry_after)


class Recorder:
    """An event sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def items(self, step: str | None = None) -> list[ItemFinished]:
        return [e for e in self.of(ItemFinished) if step is None or e.step == step]


def fast_registry() -> BucketRegistry:
    """Buckets so fast that rates never matter (for tests about something else)."""
    return BucketRegistry(lambda service, operation: 1e6)


async def run(
    job: Job, transport: MockTransport, **kwargs: Any
) -> tuple[RunSummary, Recorder, Engine]:
    recorder = Recorder()
    engine = Engine(job, transport, sink=recorder, seed=1, **kwargs)
    with anyio.fail_after(3600):  # mock time: a deadlock fails instead of hanging
        summary = await engine.run()
    return summary, recorder, engine


# ---------------------------------------------------------------------------------- preflight
class TestPreflight:
    @pytest.mark.anyio
    async def test_invalid_items_are_listed_and_nothing_is_sent(self) -> None:
        job = make_job(
            things(
                8,
                params={"thingName": "{{ 'bad name!' if index in (2, 5) else 'dev-' ~ index }}"},
            ),
            things(3, name="more", params={"thingName": "more-{{ index }}"}),
        )
        transport = MockTransport(answer)
        recorder = Recorder()
        engine = Engine(job, transport, sink=recorder)
        with pytest.raises(JobError, match=r"preflight found 2 problem\(s\); nothing was sent"):
            await engine.preflight()
        assert transport.calls == []
        problems = recorder.of(PreflightFinished)[0].problems
        assert len(problems) == 2
        assert problems[0].startswith("step 'things' item '2': ")
        assert problems[1].startswith("step 'things' item '5': ")
        assert "thingName: 'bad name!' does not match the pattern" in problems[0]

        with pytest.raises(JobError) as info:
            await Engine(job, transport).run()
        assert transport.calls == []
        assert info.value.problems == problems
        assert "item '2'" in str(info.value)

    @pytest.mark.anyio
    async def test_every_problem_is_listed_not_just_the_first(self) -> None:
        job = make_job(things(50, params={"thingName": "{{ 'x' * 200 }}"}))
        with pytest.raises(JobError) as info:
            await Engine(job, MockTransport(answer)).preflight()
        assert len(info.value.problems) == 50
        assert "and 30 more" in str(info.value)

    @pytest.mark.anyio
    async def test_duplicate_keys(self) -> None:
        job = make_job(things(5, key="k{{ index % 3 }}"))
        transport = MockTransport(answer)
        with pytest.raises(JobError) as info:
            await Engine(job, transport).preflight()
        assert info.value.problems == (
            "step 'things' item 'k0': duplicate item key",
            "step 'things' item 'k1': duplicate item key",
        )
        assert transport.calls == []

    @pytest.mark.anyio
    async def test_template_errors_in_streamed_steps_are_found(self) -> None:
        step = membership(params={"thingArn": "{{ item.thingArm }}", "thingGroupName": "g"})
        job = make_job(things(3), step)
        transport = MockTransport(answer)
        with pytest.raises(JobError) as info:
            await Engine(job, transport).run()
        assert transport.calls == []
        (problem,) = info.value.problems
        assert problem.startswith("step 'membership' (items from 'things'): ")
        assert "thingArm" in problem

    @pytest.mark.anyio
    async def test_key_template_errors_in_streamed_steps_are_found(self) -> None:
        transport = MockTransport(answer)
        with pytest.raises(JobError) as info:
            await Engine(make_job(things(3), membership(key="{{ item.serial }}")), transport).run()
        assert transport.calls == []
        (problem,) = info.value.problems
        assert problem.startswith("step 'membership' (items from 'things'): ")
        assert "serial" in problem

    @pytest.mark.anyio
    async def test_streamed_steps_may_use_upstream_outputs(self) -> None:
        # thingArn is not in the upstream's params, only in its output: no false alarm.
        recorder = Recorder()
        result = await Engine(
            make_job(things(3), membership()), MockTransport(answer), sink=recorder
        ).preflight()
        assert result == PreflightFinished(3, ())

    def test_template_syntax_errors_are_found_when_the_engine_is_built(self) -> None:
        job = make_job(
            things(2, params={"thingName": "dev-{{ index "}),
            things(2, name="b", key="{% if %}"),
        )
        with pytest.raises(JobError, match="job 'test-job' has template errors") as info:
            Engine(job, MockTransport(answer))
        assert len(info.value.problems) == 2
        assert info.value.problems[0].startswith("step 'things': params.thingName: ")
        assert info.value.problems[1].startswith("step 'b': key: ")

    @pytest.mark.anyio
    async def test_params_must_render_to_a_mapping(self) -> None:
        with pytest.raises(JobError, match="params must render to a mapping"):
            await Engine(make_job(things(1, params="{{ index }}")), MockTransport(answer)).run()

    @pytest.mark.anyio
    async def test_unreadable_rows(self, tmp_path: Path) -> None:
        (tmp_path / "rows.jsonl").write_text('{"name": "a"}\n{"name": \n')
        job = parse_job(
            {
                "name": "j",
                "steps": [
                    things(params={"thingName": "{{ item.name }}"}, items={"jsonl": "rows.jsonl"})
                ],
            },
            path=tmp_path / "job.yaml",
        )
        with pytest.raises(JobError) as info:
            await Engine(job, MockTransport(answer)).preflight()
        (problem,) = info.value.problems
        assert problem.startswith("step 'things': cannot read items: ")
        assert "rows.jsonl:2: invalid JSON" in problem


# ------------------------------------------------------------------------------------ retries
class TestRetries:
    @pytest.mark.anyio
    async def test_throttling_is_retried_and_slows_the_operation_down(self) -> None:
        seen: dict[str, int] = {}

        def handler(call: Call) -> Reply:
            name = call.params["thingName"]
            seen[name] = seen.get(name, 0) + 1
            if seen[name] <= 2:
                return failure("ThrottlingException", 400)
            return answer(call)

        transport = MockTransport(handler)
        summary, recorder, _ = await run(make_job(things(4)), transport)
        assert summary.exit_code == 0
        assert summary.steps["things"].ok == 4
        assert {e.attempts for e in recorder.items()} == {3}
        assert len(transport.calls) == 12
        throttled = recorder.of(Throttled)
        assert len(throttled) == 8
        assert {(t.step, t.operation) for t in throttled} == {("things", "iot.CreateThing")}
        assert min(t.rate for t in throttled) < 97.0  # the adaptive rate went down
        rates = summary.rates["iot.CreateThing"]
        assert rates["ceiling"] == pytest.approx(100.0 * DEFAULT_HEADROOM)
        assert rates["throttles"] >= 1
        stats = summary.stats.stats("iot.CreateThing")
        assert stats.calls == 4
        assert stats.throttles == 8

    @pytest.mark.anyio
    @pytest.mark.parametrize(("retry_after", "max_delay"), [(7.0, 20.0), (30.0, 20.0)])
    async def test_retry_after_is_honoured(self, retry_after: float, max_delay: float) -> None:
        times: list[float] = []

        def handler(call: Call) -> Reply:
            times.append(anyio.current_time())
            if len(times) == 1:
                return failure("ThrottlingException", 429, retry_after=retry_after)
            return answer(call)

        job = make_job(things(1), retries={"base_delay": 0.1, "max_delay": max_delay})
        summary, recorder, _ = await run(job, MockTransport(handler))
        assert summary.exit_code == 0
        assert recorder.items()[0].attempts == 2
        assert times[1] - times[0] >= retry_after

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        "reply",
        [
            failure("InternalFailureException", 500),
            failure("ServiceUnavailableException", 503),
            failure("ClientConnectorError", 0),
            failure("ReadTimeoutError", 0),
            failure("RequestTimeout", 400),
        ],
        ids=["500", "503", "connection", "timeout", "request-timeout"],
    )
    async def test_transient_errors_are_retried(self, reply: Reply) -> None:
        calls = 0

        def handler(call: Call) -> Reply:
            nonlocal calls
            calls += 1
            return reply if calls <= 2 else answer(call)

        summary, recorder, _ = await run(make_job(things(1)), MockTransport(handler))
        assert summary.exit_code == 0
        assert recorder.items()[0].attempts == 3
        assert recorder.of(Throttled) == []  # transient, not throttled: the rate stays

    @pytest.mark.anyio
    async def test_a_non_retryable_error_fails_the_item_at_once(self) -> None:
        def handler(call: Call) -> Reply:
            if call.params["thingName"] == "dev-1":
                return failure("InvalidRequestException", 400)
            return answer(call)

        transport = MockTransport(handler)
        summary, recorder, _ = await run(make_job(things(3)), transport)
        assert len(transport.calls) == 3
        assert summary.exit_code == 1
        assert summary.steps["things"].ok == 2
        assert summary.steps["things"].failed == 1
        (failed,) = [e for e in recorder.items() if e.status == "failed"]
        assert (failed.key, failed.attempts, failed.error_code) == (
            "1",
            1,
            "InvalidRequestException",
        )
        assert failed.error_message == "InvalidRequestException says no"
        (item,) = summary.failures
        assert (item.step, item.key, item.error_code, item.attempts) == (
            "things",
            "1",
            "InvalidRequestException",
            1,
        )
        assert summary.failures_total == 1

    @pytest.mark.anyio
    async def test_max_attempts(self) -> None:
        transport = MockTransport(lambda call: failure("ServiceUnavailableException", 503))
        job = make_job(things(2), retries={"max_attempts": 3})
        summary, recorder, _ = await run(job, transport)
        assert len(transport.calls) == 6
        assert summary.steps["things"].failed == 2
        assert {(e.attempts, e.error_code) for e in recorder.items()} == {
            (3, "ServiceUnavailableException")
        }

    @pytest.mark.anyio
    async def test_a_status_without_a_code_names_the_status(self) -> None:
        transport = MockTransport(lambda call: Reply(502))
        job = make_job(things(1), retries={"max_attempts": 2})
        summary, recorder, _ = await run(job, transport)
        assert summary.exit_code == 1
        assert recorder.items()[0].error_code == "HTTP502"
        assert recorder.items()[0].error_message == "HTTP status 502"

    @pytest.mark.anyio
    async def test_backoff_is_full_jitter_below_max_delay(self) -> None:
        times: list[float] = []

        def handler(call: Call) -> Reply:
            times.append(anyio.current_time())
            return failure("InternalFailureException", 500)

        job = make_job(things(1), retries={"max_attempts": 8, "base_delay": 1, "max_delay": 3})
        await run(job, MockTransport(handler))
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) == 7
        assert all(0 <= gap <= 3.0 + 1e-6 for gap in gaps)
        assert len(set(gaps)) > 1  # jittered


# -------------------------------------------------------------------------------- idempotency
TOKEN_CASES = [
    (
        "greengrassv2",
        "CreateDeployment",
        {"targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/g-{{ index }}"},
        "clientToken",
        r"^[a-zA-Z0-9-]{1,64}$",
    ),
    (
        "iotwireless",
        "CreateFuotaTask",
        {
            "Name": "fw-{{ index }}",
            "LoRaWAN": {"RfRegion": "EU868"},
            "FirmwareUpdateImage": "s3://bucket/fw.bin",
            "FirmwareUpdateRole": "arn:aws:iam::123456789012:role/fuota",
        },
        "ClientRequestToken",
        r"^[a-zA-Z0-9-_]{1,64}$",
    ),
    (
        "iot",
        "CreatePackageVersion",
        {"packageName": "pkg", "versionName": "1.{{ index }}.0"},
        "clientToken",
        r"^\S{36,64}$",
    ),
]


class TestIdempotency:
    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("service", "operation", "params", "member", "pattern"),
        TOKEN_CASES,
        ids=[c[1] for c in TOKEN_CASES],
    )
    async def test_derived_tokens(
        self, service: str, operation: str, params: dict[str, Any], member: str, pattern: str
    ) -> None:
        step = {
            "name": "create",
            "service": service,
            "operation": operation,
            "items": {"count": 3},
            "params": params,
        }
        first, second = MockTransport(answer), MockTransport(answer)
        await run(make_job(step), first)
        await run(make_job(step), second)

        def tokens(transport: MockTransport) -> dict[str, str]:
            return {str(c.params): c.params[member] for c in transport.calls}

        assert tokens(first) == tokens(second)  # same (job, step, key): same token
        assert len(set(tokens(first).values())) == 3  # one per item
        op = load_service(service).operation(operation)
        shape = op.input.members[member].shape  # type: ignore[union-attr]
        for token in tokens(first).values():
            assert re.match(pattern, token)
            assert op.service.validator.validate_shape(shape, token) == []

    @pytest.mark.anyio
    async def test_tokens_depend_on_job_step_and_key(self) -> None:
        step = {
            "name": "p",
            "service": "iot",
            "operation": "CreatePackageVersion",
            "items": {"count": 1},
            "params": {"packageName": "pkg", "versionName": "1.0.0"},
        }
        seen = set()
        for job in (
            make_job(step),
            make_job({**step, "name": "q"}),
            parse_job({"name": "other-job", "steps": [step]}),
            make_job({**step, "items": {"range": {"start": 1, "stop": 2}}}),
        ):
            transport = MockTransport(answer)
            await run(job, transport)
            seen.add(transport.calls[0].params["clientToken"])
        assert len(seen) == 4

    @pytest.mark.anyio
    async def test_an_explicit_token_is_kept(self) -> None:
        step = {
            "name": "p",
            "service": "iot",
            "operation": "CreatePackageVersion",
            "items": {"count": 1},
            "params": {
                "packageName": "pkg",
                "versionName": "1.0.0",
                "clientToken": "my-own-token-0123456789-0123456789-012",
            },
        }
        transport = MockTransport(answer)
        await run(make_job(step), transport)
        assert transport.calls[0].params["clientToken"] == "my-own-token-0123456789-0123456789-012"

    def test_derive_token_falls_back_to_what_the_member_accepts(self) -> None:
        uuid_like = derive_token("j", "s", "k", lambda t: True)
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid_like
        )
        no_dashes = derive_token("j", "s", "k", lambda t: "-" not in t and len(t) <= 32)
        assert re.fullmatch(r"[0-9a-f]{32}", no_dashes)
        long = derive_token("j", "s", "k", lambda t: len(t) == 64)
        assert re.fullmatch(r"[0-9a-f]{64}", long)
        assert derive_token("j", "s", "k", lambda t: False) == uuid_like
        assert derive_token("j", "s", "k2", lambda t: True) != uuid_like


# ---------------------------------------------------------------------------------- streaming
class TestStreaming:
    @pytest.mark.anyio
    async def test_a_downstream_step_gets_upstream_outputs_merged_into_the_item(self) -> None:
        transport = MockTransport(answer)
        summary, recorder, _ = await run(make_job(things(6), membership()), transport)
        assert summary.exit_code == 0
        added = [c.params for c in transport.calls if c.operation == "AddThingToThingGroup"]
        assert sorted(p["thingArn"] for p in added) == sorted(
            ARN.format(f"dev-{i}") for i in range(6)
        )
        by_arn = {p["thingArn"]: p["thingGroupName"] for p in added}
        assert by_arn[ARN.format("dev-4")] == "g-1"  # item.index came through too
        assert sorted(e.key for e in recorder.items("membership")) == [str(i) for i in range(6)]
        plan = {p.name: p for p in recorder.of(RunStarted)[0].steps}
        assert plan["membership"].total == 6
        assert plan["membership"].upstream == ("things",)

    @pytest.mark.anyio
    async def test_failed_upstream_items_are_not_forwarded(self) -> None:
        def handler(call: Call) -> Reply:
            if call.params.get("thingName") == "dev-2":
                return failure("InvalidRequestException", 400)
            return answer(call)

        transport = MockTransport(handler)
        summary, _, _ = await run(make_job(things(4), membership()), transport)
        assert summary.steps["things"].failed == 1
        assert summary.steps["membership"].ok == 3

    @pytest.mark.anyio
    async def test_a_chain_of_three_steps(self) -> None:
        third = {
            "name": "describe",
            "service": "iot",
            "operation": "DescribeThing",
            "items": {"from": "membership"},
            "params": {"thingName": "{{ item.thingName }}"},
        }
        transport = MockTransport(answer)
        summary, _, _ = await run(make_job(things(5), membership(), third), transport)
        described = sorted(
            c.params["thingName"] for c in transport.calls if c.operation == "DescribeThing"
        )
        assert described == [f"dev-{i}" for i in range(5)]
        assert summary.exit_code == 0

    @pytest.mark.anyio
    async def test_after_waits_for_the_whole_step(self) -> None:
        job = make_job(
            things(30),
            things(5, name="late", params={"thingName": "late-{{ index }}"}, after=["things"]),
        )
        transport = MockTransport(answer)
        _, recorder, _ = await run(job, transport)
        names = [c.params["thingName"] for c in transport.calls]
        first_late = min(i for i, n in enumerate(names) if n.startswith("late-"))
        assert first_late == 30
        order = [e for e in recorder.events if isinstance(e, StepStarted | StepFinished)]
        assert order.index(StepStarted("late")) > order.index(
            next(e for e in order if isinstance(e, StepFinished) and e.step == "things")
        )

    @pytest.mark.anyio
    async def test_the_concurrency_cap_is_never_exceeded(self) -> None:
        rng = random.Random(7)
        in_flight = 0
        peak = 0

        async def handler(call: Call) -> Reply:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await anyio.sleep(rng.uniform(0.001, 0.05))
            in_flight -= 1
            if rng.random() < 0.1:
                return failure("ThrottlingException", 400)
            return answer(call)

        job = make_job(
            things(120),
            membership(),
            things(40, name="others", params={"thingName": "o-{{ index }}"}),
            concurrency=6,
        )
        summary, _, _ = await run(job, MockTransport(handler), registry=fast_registry())
        assert summary.exit_code == 0
        assert peak == 6

    @pytest.mark.anyio
    async def test_the_concurrency_argument_overrides_the_job(self) -> None:
        in_flight = peak = 0

        async def handler(call: Call) -> Reply:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await anyio.sleep(0.01)
            in_flight -= 1
            return answer(call)

        await run(
            make_job(things(50), concurrency=20),
            MockTransport(handler),
            concurrency=3,
            registry=fast_registry(),
        )
        assert peak == 3

    @pytest.mark.anyio
    async def test_a_streamed_step_waiting_for_after_does_not_deadlock(self) -> None:
        # things fills membership's channel long before "late" may start (after "gate", a slow
        # call); "late" still needs call slots, so blocked producers must not hold them all.
        async def handler(call: Call) -> Reply:
            if call.params.get("thingName") == "gate-0":
                await anyio.sleep(10)
            return answer(call)

        job = make_job(
            things(3000),
            membership(after=["late"]),
            things(1, name="gate", params={"thingName": "gate-{{ index }}"}),
            things(4, name="late", params={"thingName": "late-{{ index }}"}, after=["gate"]),
            concurrency=4,
        )
        summary, _, _ = await run(job, MockTransport(handler), registry=fast_registry())
        assert summary.steps["membership"].ok == 3000
        assert summary.steps["late"].ok == 4

    @pytest.mark.anyio
    async def test_a_slow_operation_does_not_starve_a_fast_one(self) -> None:
        # CreateFuotaTask at 1 TPS must not keep every call slot waiting for its bucket while
        # CreateThing, at 1000 TPS, has 200 items to do.
        fuota = {
            "name": "fuota",
            "service": "iotwireless",
            "operation": "CreateFuotaTask",
            "items": {"count": 30},
            "rate": 1,
            "params": dict(TOKEN_CASES[1][2]),
        }
        job = make_job(fuota, things(200, rate=1000), concurrency=8)
        finished: dict[str, float] = {}

        def sink(event: Event) -> None:
            if isinstance(event, StepFinished):
                finished[event.step] = anyio.current_time()

        start = anyio.current_time()
        summary = await Engine(job, MockTransport(answer), sink=sink, seed=1).run()
        assert summary.exit_code == 0
        assert finished["fuota"] - start >= 29  # 30 calls at 1 TPS
        assert finished["things"] - start < 2

    @pytest.mark.anyio
    async def test_every_static_source_feeds_items(self, tmp_path: Path) -> None:
        (tmp_path / "rows.csv").write_text("name,site\ncsv-a,x\ncsv-b,y\n")
        (tmp_path / "rows.jsonl").write_text('{"name": "jl-a"}\n\n{"name": "jl-b"}\n')
        raw = {
            "name": "sources",
            "steps": [
                things(
                    name="csv",
                    items={"csv": "rows.csv"},
                    params={"thingName": "{{ item.name }}-{{ item.site }}-{{ index }}"},
                ),
                things(
                    name="jsonl",
                    items={"jsonl": "rows.jsonl"},
                    key="{{ item.name }}",
                    params={"thingName": "{{ item.name }}-{{ index }}"},
                ),
                things(
                    name="values",
                    items={"values": [{"n": "v-a"}, {"n": "v-b"}]},
                    params={"thingName": "{{ item.n }}"},
                ),
                things(
                    name="range",
                    items={"range": {"start": 10, "stop": 4, "step": -3}},
                    params={"thingName": "r-{{ index }}-{{ key }}"},
                ),
                things(name="once", items=None, params={"thingName": "once-{{ index }}"}),
            ],
        }
        job = parse_job(raw, path=tmp_path / "job.yaml")
        transport = MockTransport(answer)
        summary, recorder, _ = await run(job, transport)
        assert summary.exit_code == 0
        assert sorted(c.params["thingName"] for c in transport.calls) == sorted(
            [
                "csv-a-x-0",
                "csv-b-y-1",
                "jl-a-0",
                "jl-b-1",
                "v-a",
                "v-b",
                "r-10-10",
                "r-7-7",
                "once-0",
            ]
        )
        assert sorted(e.key for e in recorder.items("jsonl")) == ["jl-a", "jl-b"]
        plan = {p.name: p.total for p in recorder.of(RunStarted)[0].steps}
        assert plan == {"csv": 2, "jsonl": 2, "values": 2, "range": 2, "once": 1}


# -------------------------------------------------------------------------------- list steps
def list_step(**extra: Any) -> dict[str, Any]:
    return {
        "name": "listing",
        "kind": "list",
        "service": "iot",
        "operation": "ListThings",
        "params": {},
        **extra,
    }


def pages(*contents: list[str], tokens: list[str | None] | None = None) -> Any:
    """A ListThings handler answering ``contents`` page by page (page i has token "p{i}")."""
    tokens = tokens or [f"p{i + 1}" for i in range(len(contents) - 1)] + [None]

    def handler(call: Call) -> Reply:
        token = call.params.get("nextToken")
        number = 0 if token is None else int(token[1:])
        output: dict[str, Any] = {
            "things": [{"thingName": n, "thingArn": ARN.format(n)} for n in contents[number]]
        }
        if tokens[number] is not None:
            output["nextToken"] = tokens[number]
        return Reply(200, output=output)

    return handler


class TestListSteps:
    @pytest.mark.anyio
    async def test_pages_through_and_forwards_every_element(self) -> None:
        received: list[tuple[str, str, list[Any]]] = []
        transport = MockTransport(pages(["a", "b"], ["c", "d"], ["e"]))
        describe = {
            "name": "describe",
            "service": "iot",
            "operation": "DescribeThing",
            "items": {"from": "listing"},
            "params": {"thingName": "{{ item.thingName }}"},
        }
        job = make_job(list_step(expect_items=5, params={"maxResults": 2}), describe)
        summary, recorder, _ = await run(
            job, transport, item_sink=lambda step, key, items: received.append((step, key, items))
        )
        assert summary.exit_code == 0
        listing = [c.params for c in transport.calls if c.operation == "ListThings"]
        assert listing == [
            {"maxResults": 2},
            {"maxResults": 2, "nextToken": "p1"},
            {"maxResults": 2, "nextToken": "p2"},
        ]
        assert [len(items) for _, _, items in received] == [2, 2, 1]
        assert {(step, key) for step, key, _ in received} == {("listing", "0")}
        (item,) = recorder.items("listing")
        assert item.attempts == 3
        described = sorted(
            c.params["thingName"] for c in transport.calls if c.operation == "DescribeThing"
        )
        assert described == ["a", "b", "c", "d", "e"]
        assert sorted(e.key for e in recorder.items("describe")) == [f"0/{i}" for i in range(5)]

    @pytest.mark.anyio
    async def test_a_key_template_names_streamed_items(self) -> None:
        # Listing order is no identity: downstream of a list, a key template gives stable keys
        # (journal, client tokens).
        transport = MockTransport(pages(["b", "a"], ["c"]))
        package = {
            "name": "versions",
            "service": "iot",
            "operation": "CreatePackageVersion",
            "items": {"from": "listing"},
            "key": "pkg-{{ item.thingName }}",
            "params": {"packageName": "{{ item.thingName }}", "versionName": "1.0.0"},
        }
        _, recorder, _ = await run(make_job(list_step(), package), transport)
        assert sorted(e.key for e in recorder.items("versions")) == ["pkg-a", "pkg-b", "pkg-c"]
        tokens = {
            c.params["packageName"]: c.params["clientToken"]
            for c in transport.calls
            if c.operation == "CreatePackageVersion"
        }
        accept = lambda token: True  # noqa: E731
        assert tokens["a"] == derive_token("test-job", "versions", "pkg-a", accept)

    @pytest.mark.anyio
    async def test_a_failing_key_template_of_a_streamed_step(self) -> None:
        step = membership(key="{{ item.thingName ~ (1 / (item.index - 2)) }}")
        summary, recorder, _ = await run(make_job(things(4), step), MockTransport(answer))
        assert summary.steps["membership"].ok == 3
        (failed,) = [e for e in recorder.items("membership") if e.status == "failed"]
        assert failed.error_code == "TemplateError"
        assert "division by zero" in failed.error_message

    @pytest.mark.anyio
    async def test_expect_items_mismatch_fails_the_item(self) -> None:
        transport = MockTransport(pages(["a", "b"], ["c"]))
        summary, recorder, _ = await run(make_job(list_step(expect_items=4)), transport)
        assert summary.exit_code == 1
        (item,) = recorder.items()
        assert item.status == "failed"
        assert item.error_code == "UnexpectedItemCount"
        assert item.error_message == "expected 4 items, listed 3"
        assert item.attempts == 2

    @pytest.mark.anyio
    async def test_a_repeated_token_fails_the_item(self) -> None:
        transport = MockTransport(pages(["a"], ["b"], ["c"], tokens=["p1", "p1", None]))
        summary, recorder, _ = await run(make_job(list_step()), transport)
        (item,) = recorder.items()
        assert item.status == "failed"
        assert item.error_code == "PaginationError"
        assert "same next token" in item.error_message
        assert len(transport.calls) == 2
        assert summary.exit_code == 1

    @pytest.mark.anyio
    async def test_a_token_cycle_fails_the_item(self) -> None:
        transport = MockTransport(pages(["a"], ["b"], ["c"], tokens=["p1", "p2", "p1"]))
        _, recorder, _ = await run(make_job(list_step()), transport)
        (item,) = recorder.items()
        assert item.error_code == "PaginationError"
        assert "repeats an earlier token" in item.error_message

    @pytest.mark.anyio
    async def test_a_duplicate_item_fails_the_item(self) -> None:
        transport = MockTransport(pages(["a", "b"], ["b", "c"]))
        _, recorder, _ = await run(make_job(list_step()), transport)
        (item,) = recorder.items()
        assert item.error_code == "PaginationError"
        assert "repeats item" in item.error_message

    @pytest.mark.anyio
    async def test_pages_are_retried_and_attempts_add_up(self) -> None:
        inner = pages(["a"], ["b"], ["c"])
        count = 0

        def handler(call: Call) -> Reply:
            nonlocal count
            count += 1
            if count in (2, 3):
                return failure("ThrottlingException", 400)
            return inner(call)

        summary, recorder, _ = await run(make_job(list_step()), MockTransport(handler))
        assert summary.exit_code == 0
        assert recorder.items()[0].attempts == 5

    @pytest.mark.anyio
    async def test_a_failing_page_fails_the_item_with_its_code(self) -> None:
        inner = pages(["a"], ["b"])

        def handler(call: Call) -> Reply:
            if call.params.get("nextToken"):
                return failure("InvalidRequestException", 400)
            return inner(call)

        _, recorder, _ = await run(make_job(list_step()), MockTransport(handler))
        (item,) = recorder.items()
        assert (item.status, item.error_code, item.attempts) == (
            "failed",
            "InvalidRequestException",
            2,
        )

    @pytest.mark.anyio
    async def test_a_list_per_parameter_set(self) -> None:
        step = list_step(
            items={"values": [{"thingTypeName": "t1"}, {"thingTypeName": "t2"}]},
            params="{{ item }}",
            expect_items=2,
        )
        transport = MockTransport(pages(["a", "b"]))
        summary, _, _ = await run(make_job(step), transport)
        assert summary.steps["listing"].ok == 2
        assert sorted(c.params["thingTypeName"] for c in transport.calls) == ["t1", "t2"]


# ------------------------------------------------------------------------------ events/summary
class TestEventsAndSummary:
    @pytest.mark.anyio
    async def test_the_event_sequence(self) -> None:
        _, recorder, _ = await run(make_job(things(3)), MockTransport(answer))
        kinds = [type(e).__name__ for e in recorder.events]
        assert kinds == [
            "PreflightFinished",
            "RunStarted",
            "StepStarted",
            "ItemFinished",
            "ItemFinished",
            "ItemFinished",
            "StepFinished",
            "RunFinished",
        ]
        started = recorder.of(RunStarted)[0]
        assert started.job == "test-job"
        assert started.journal is None
        assert started.resumed == 0
        assert [(p.name, p.operation, p.kind, p.total) for p in started.steps] == [
            ("things", "iot.CreateThing", "call", 3)
        ]
        assert recorder.of(PreflightFinished) == [PreflightFinished(3, ())]
        assert recorder.of(StepFinished)[0].counts.ok == 3
        assert {e.status for e in recorder.items()} == {"ok"}

    @pytest.mark.anyio
    async def test_per_step_order_with_two_steps(self) -> None:
        _, recorder, _ = await run(make_job(things(4), membership()), MockTransport(answer))
        for step in ("things", "membership"):
            mine = [
                e
                for e in recorder.events
                if isinstance(e, StepStarted | StepFinished | ItemFinished) and e.step == step
            ]
            assert isinstance(mine[0], StepStarted)
            assert isinstance(mine[-1], StepFinished)
            assert all(isinstance(e, ItemFinished) for e in mine[1:-1])
            assert len(mine) == 6
        assert isinstance(recorder.events[-1], RunFinished)
        assert isinstance(recorder.events[1], RunStarted)

    @pytest.mark.anyio
    async def test_summary(self) -> None:
        def handler(call: Call) -> Reply:
            if call.params.get("thingName") == "dev-0":
                return failure("InvalidRequestException", 400)
            return answer(call)

        summary, recorder, _ = await run(make_job(things(3), membership()), MockTransport(handler))
        assert recorder.of(RunFinished)[0].summary is summary
        assert summary.exit_code == 1
        assert summary.steps["things"].done == 3
        document = summary.to_json()
        assert document["exit_code"] == 1
        assert document["steps"] == {
            "things": {"ok": 2, "failed": 1, "skipped": 0},
            "membership": {"ok": 2, "failed": 0, "skipped": 0},
        }
        assert document["failures_total"] == 1
        assert document["failures"][0]["error_code"] == "InvalidRequestException"
        assert set(document["rates"]) == {"iot.CreateThing", "iot.AddThingToThingGroup"}

    @pytest.mark.anyio
    async def test_exit_code_zero(self) -> None:
        summary, _, _ = await run(make_job(things(2)), MockTransport(answer))
        assert summary.exit_code == 0
        assert summary.to_json()["failures"] == []

    @pytest.mark.anyio
    async def test_an_empty_source(self) -> None:
        summary, recorder, _ = await run(make_job(things(0), membership()), MockTransport(answer))
        assert summary.exit_code == 0
        assert recorder.items() == []
        assert len(recorder.of(StepFinished)) == 2

    @pytest.mark.anyio
    async def test_the_step_region_reaches_the_transport(self) -> None:
        transport = MockTransport(answer)
        await run(make_job(things(1, region="eu-west-1")), transport)
        assert transport.calls[0].region == "eu-west-1"


# ---------------------------------------------------------------------------------- memory
class CountingTransport:
    """A transport that answers at once and keeps nothing (MockTransport keeps every call)."""

    identity = "count"
    region = "us-east-1"

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, call: Call) -> Reply:
        self.calls += 1
        return Reply(200, output={})

    async def aclose(self) -> None:
        pass


async def _peak_memory(count: int) -> int:
    """Run a ``count``-item job over a transport that keeps nothing; the tracemalloc peak."""
    job = make_job(
        {
            "name": "describe",
            "service": "iot",
            "operation": "DescribeThing",
            "items": {"count": count},
            "params": {"thingName": "d-{{ index }}"},
        },
        concurrency=64,
    )
    transport = CountingTransport()
    engine = Engine(job, transport, registry=fast_registry())
    tracemalloc.start()
    try:
        summary = await engine.run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.steps["describe"].ok == count
    assert transport.calls == count
    return peak


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_streaming_memory_stays_flat() -> None:
    # The engine costs about 0.1 ms per item, and four times that under tracemalloc: the counts
    # are lowered from 200,000 to keep the test to a few seconds. Flat means: four times the
    # items, the same peak (no per-item state survives its item).
    started = time.perf_counter()
    small = await _peak_memory(3_000)
    large = await _peak_memory(12_000)
    assert large < 50 * 2**20, f"peak {large / 2**20:.1f} MB"
    assert large < small + 2**19, f"peak {small / 2**20:.2f} MB -> {large / 2**20:.2f} MB"
    assert time.perf_counter() - started < 15
