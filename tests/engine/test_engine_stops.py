"""Stopping a run: Engine.stop, the circuit breaker, refused credentials, journal write errors,
and what resume then does. Over a MockTransport on trio with an autojumping MockClock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from trio.testing import MockClock

from harness.engine import (
    Engine,
    Event,
    ItemFinished,
    Job,
    Journal,
    RunSummary,
    StopRequested,
    parse_job,
    read_journal,
)
from harness.model import Operation
from harness.throttle import BucketRegistry
from harness.transport import Call, MockTransport, Reply

ARN = "arn:aws:iot:us-east-1:123456789012:thing/{}"


@pytest.fixture
def anyio_backend() -> object:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def make_job(n: int = 50, *, feeding: bool = True, max_attempts: int = 8) -> Job:
    steps: list[dict[str, Any]] = [
        {
            "name": "things",
            "service": "iot",
            "operation": "CreateThing",
            "items": {"count": n},
            "params": {"thingName": "dev-{{ index }}"},
        }
    ]
    if feeding:
        steps.append(
            {
                "name": "membership",
                "service": "iot",
                "operation": "AddThingToThingGroup",
                "items": {"from": "things"},
                "params": {"thingArn": "{{ item.thingArn }}", "thingGroupName": "fleet"},
            }
        )
    return parse_job(
        {
            "name": "stops",
            "concurrency": 4,
            "retries": {"max_attempts": max_attempts, "base_delay": 0.5, "max_delay": 5},
            "steps": steps,
        }
    )


def healthy(call: Call) -> Reply:
    if call.operation == "CreateThing":
        name = call.params["thingName"]
        return Reply(200, output={"thingName": name, "thingArn": ARN.format(name)})
    return Reply(200, output={})


def slow(delay: float, answer: Any = healthy) -> Any:
    async def respond(call: Call) -> Reply:
        await anyio.sleep(delay)
        return answer(call)  # type: ignore[no-any-return]

    return respond


async def run_engine(
    job: Job,
    transport: MockTransport,
    journal: Path | None = None,
    *,
    stop_after: float | None = None,
    immediate_after: float | None = None,
    resume: bool = False,
    **options: Any,
) -> tuple[RunSummary, list[Event]]:
    events: list[Event] = []
    state = None
    if resume and journal is not None:
        state = read_journal(journal, keep_outputs=frozenset({"things"}))
    engine = Engine(job, transport, sink=events.append, resume_state=state, **options)
    if journal is not None:
        engine.journal = Journal(journal, job.name)

    async def stopper() -> None:
        if stop_after is not None:
            await anyio.sleep(stop_after)
            engine.stop("test stop", exit_code=130)
        if immediate_after is not None:
            await anyio.sleep(immediate_after)
            engine.stop("again", immediate=True)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stopper)
            summary = await engine.run()
            tg.cancel_scope.cancel()
    finally:
        if engine.journal is not None:
            engine.journal.close()
    return summary, events


def journal_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_bytes().splitlines()
    return [orjson.loads(line) for line in lines[1:]]


def ok_counts(paths: list[Path]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for path in paths:
        for entry in journal_lines(path):
            if entry["status"] == "ok":
                key = (entry["step"], entry["key"])
                counts[key] = counts.get(key, 0) + 1
    return counts


# ------------------------------------------------------------------------------- Engine.stop
@pytest.mark.anyio
async def test_stop_lets_in_flight_calls_finish_and_leaves_the_rest_pending(
    tmp_path: Path,
) -> None:
    job = make_job(50)
    transport = MockTransport(slow(1.0))
    path = tmp_path / "j.jsonl"
    summary, events = await run_engine(job, transport, path, stop_after=2.5)

    requested = [e for e in events if isinstance(e, StopRequested)]
    assert len(requested) == 1
    assert requested[0].stop.reason == "test stop"
    assert requested[0].in_flight == 4  # concurrency 4, each call takes 1 s
    assert summary.stopped is not None and summary.stopped.cause == "signal"
    assert summary.exit_code == 130
    # Every call that was sent finished and was journaled; nothing failed.
    sent = len(transport.calls)
    done = summary.steps["things"].ok + summary.steps["membership"].ok
    assert done == sent
    assert summary.failures_total == 0
    assert 0 < summary.steps["things"].ok < 50
    assert summary.pending["things"] == 50 - summary.steps["things"].ok
    assert len(journal_lines(path)) == done
    assert summary.to_json()["stopped"] == {
        "cause": "signal",
        "reason": "test stop",
        "exit_code": 130,
    }

    # Resume completes the job: every item done exactly once over both runs.
    second = tmp_path / "j.jsonl"
    summary2, _ = await run_engine(job, MockTransport(healthy), second, resume=True)
    assert summary2.stopped is None and summary2.exit_code == 0
    counts = ok_counts([path])
    assert len(counts) == 100
    assert set(counts.values()) == {1}


@pytest.mark.anyio
async def test_stop_abandons_items_waiting_for_a_retry(tmp_path: Path) -> None:
    # Every attempt fails with a 500: items sleep before their retries; the stop ends the sleeps
    # at once and none of those items is recorded as failed.
    job = make_job(20, feeding=False, max_attempts=50)
    transport = MockTransport(lambda call: Reply(500, error_code="InternalFailureException"))
    started = 0.0

    async def timed() -> tuple[RunSummary, list[Event]]:
        nonlocal started
        started = anyio.current_time()
        return await run_engine(job, transport, tmp_path / "j.jsonl", stop_after=3.0)

    summary, _ = await timed()
    assert anyio.current_time() - started < 3.5  # no backoff sleep ran to its end
    assert summary.failures_total == 0
    assert summary.steps["things"].failed == 0 and summary.steps["things"].ok == 0
    assert journal_lines(tmp_path / "j.jsonl") == []


@pytest.mark.anyio
async def test_an_immediate_stop_cancels_the_calls_in_flight(tmp_path: Path) -> None:
    job = make_job(20, feeding=False)
    transport = MockTransport(slow(60.0))
    started = anyio.current_time()
    summary, events = await run_engine(
        job, transport, tmp_path / "j.jsonl", stop_after=1.0, immediate_after=2.0
    )
    assert anyio.current_time() - started == pytest.approx(3.0)
    assert [e.immediate for e in events if isinstance(e, StopRequested)] == [False, True]
    assert summary.stopped is not None and summary.stopped.reason == "test stop"
    assert summary.steps["things"].ok == 0 and summary.failures_total == 0
    assert len(transport.calls) == 4
    assert journal_lines(tmp_path / "j.jsonl") == []


@pytest.mark.anyio
async def test_a_stop_before_the_run_sends_nothing() -> None:
    job = make_job(5)
    transport = MockTransport(healthy)
    engine = Engine(job, transport)
    engine.stop("before")
    summary = await engine.run()
    assert transport.calls == []
    assert summary.stopped is not None and summary.exit_code == 1


# -------------------------------------------------------------------------- circuit breaker
@pytest.mark.anyio
async def test_the_breaker_stops_after_consecutive_connection_failures(tmp_path: Path) -> None:
    job = make_job(200, max_attempts=100)
    healthy_for = 30

    def dies(call: Call) -> Reply:
        if len(transport.calls) <= healthy_for:
            return healthy(call)
        return Reply(0, error_code="EndpointConnectionError", error_message="refused")

    transport = MockTransport(dies)
    path = tmp_path / "j.jsonl"
    summary, _ = await run_engine(job, transport, path, max_connection_failures=7)
    assert summary.stopped is not None
    assert summary.stopped.cause == "breaker"
    assert summary.stopped.reason.startswith("7 consecutive connection failures to iot in")
    assert "EndpointConnectionError: refused" in summary.stopped.reason
    assert summary.exit_code == 1
    # Stopped at the 7th failure: a few calls in flight then, no more.
    assert len(transport.calls) <= healthy_for + 7 + 4
    assert summary.failures_total == 0  # nothing is failed: the items stay pending
    assert len(journal_lines(path)) == summary.steps["things"].ok + summary.steps["membership"].ok


@pytest.mark.anyio
async def test_an_answer_resets_the_breaker() -> None:
    # Failures alternate with answers: never 3 in a row, so the run completes.
    job = make_job(40, feeding=False, max_attempts=10)
    flaky: dict[str, int] = {}

    def answer(call: Call) -> Reply:
        name = call.params["thingName"]
        flaky[name] = flaky.get(name, 0) + 1
        if flaky[name] == 1:
            return Reply(0, error_code="ConnectionClosedError", error_message="reset")
        return healthy(call)

    job = parse_job({**_raw(job), "concurrency": 1})
    summary, _ = await run_engine(job, MockTransport(answer), max_connection_failures=3)
    assert summary.stopped is None
    assert summary.steps["things"].ok == 40


def _raw(job: Job) -> dict[str, Any]:
    return {
        "name": job.name,
        "retries": {"max_attempts": 10, "base_delay": 0.5, "max_delay": 5},
        "steps": [
            {
                "name": "things",
                "service": "iot",
                "operation": "CreateThing",
                "items": {"count": 40},
                "params": {"thingName": "dev-{{ index }}"},
            }
        ],
    }


@pytest.mark.anyio
async def test_the_breaker_can_be_turned_off() -> None:
    job = make_job(3, feeding=False, max_attempts=30)
    transport = MockTransport(lambda call: Reply(0, error_code="EndpointConnectionError"))
    summary, _ = await run_engine(job, transport, max_connection_failures=0)
    assert summary.stopped is None
    assert summary.steps["things"].failed == 3
    assert len(transport.calls) == 90


# ---------------------------------------------------------------------- refused credentials
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "UnrecognizedClientException"),
        (403, "AccessDeniedException"),
        (403, "InvalidSignatureException"),
        (400, "ExpiredTokenException"),
        (0, "NoCredentialsError"),
    ],
)
@pytest.mark.anyio
async def test_refused_credentials_stop_the_run_without_retries(
    tmp_path: Path, status: int, code: str
) -> None:
    job = make_job(100)
    transport = MockTransport(lambda call: Reply(status, error_code=code, error_message="no"))
    path = tmp_path / "j.jsonl"
    summary, events = await run_engine(job, transport, path)
    assert summary.stopped is not None and summary.stopped.cause == "denied"
    assert f"credentials refused by iot in us-east-1: {code}: no" == summary.stopped.reason
    # The first answers came back together (concurrency 4): those items failed, unretried.
    assert len(transport.calls) <= 4
    failed = [e for e in events if isinstance(e, ItemFinished) and e.status == "failed"]
    assert failed and all(e.attempts == 1 and e.error_code == code for e in failed)
    assert summary.pending["things"] == 100 - len(failed)
    assert len(journal_lines(path)) == len(failed)


# -------------------------------------------------------------------------- journal errors
@pytest.mark.anyio
async def test_a_journal_write_error_stops_the_run(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    job = make_job(200, feeding=False)
    journal = Journal(path, job.name)
    full = os.open("/dev/full", os.O_WRONLY)
    recorded = 0

    def sink(event: Event) -> None:
        nonlocal recorded
        if isinstance(event, ItemFinished) and event.status == "ok":
            recorded += 1
            if recorded == 25:
                # From now on every write of the journal fails as on a full disk.
                os.dup2(full, journal._fd)

    engine = Engine(job, MockTransport(healthy), sink=sink)
    engine.journal = journal
    try:
        summary = await engine.run()
    finally:
        journal.close()
        os.close(full)
    assert summary.stopped is not None and summary.stopped.cause == "journal"
    assert summary.stopped.reason == (
        f"cannot write journal {path}: No space left on device; "
        "the entries written before are intact"
    )
    assert summary.exit_code == 1
    # The items whose outcome could not be written are not counted: they stay pending.
    assert summary.steps["things"].ok == 25
    assert summary.failures_total == 0
    assert len(journal_lines(path)) == 25


# ------------------------------------------------------------------- resume does not recheck
@pytest.mark.anyio
async def test_resume_does_not_validate_the_items_already_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job(300, feeding=False)
    path = tmp_path / "j.jsonl"
    summary, _ = await run_engine(job, MockTransport(slow(0.1)), path, stop_after=2.0)
    done = summary.steps["things"].ok
    assert 0 < done < 300

    validated: list[dict[str, Any]] = []
    original = Operation.validate

    def counting(self: Operation, params: dict[str, Any]) -> Any:
        validated.append(params)
        return original(self, params)

    monkeypatch.setattr(Operation, "validate", counting)
    summary2, _ = await run_engine(job, MockTransport(healthy), path, resume=True)
    assert summary2.exit_code == 0
    assert summary2.steps["things"].skipped == done
    assert len(validated) == 300 - done  # only the items still to do


@pytest.mark.anyio
async def test_a_stop_while_a_waiting_step_replays_its_held_items(tmp_path: Path) -> None:
    # "membership" takes the things as they come but runs only after "gate": its items wait in
    # a relay (spilled beyond 1,024). A stop while it replays them ends its workers: the relay
    # finds nobody to hand to; what it held stays pending, and resume does it.
    job = parse_job(
        {
            "name": "stops",
            "concurrency": 4,
            "steps": [
                {
                    "name": "things",
                    "service": "iot",
                    "operation": "CreateThing",
                    "items": {"count": 1500},
                    "params": {"thingName": "dev-{{ index }}"},
                },
                {
                    "name": "gate",
                    "service": "iot",
                    "operation": "CreateThingGroup",
                    "after": ["things"],
                    "params": {"thingGroupName": "fleet"},
                },
                {
                    "name": "membership",
                    "service": "iot",
                    "operation": "AddThingToThingGroup",
                    "items": {"from": "things"},
                    "after": ["gate"],
                    "params": {"thingArn": "{{ item.thingArn }}", "thingGroupName": "fleet"},
                },
            ],
        }
    )

    def answer(call: Call) -> Any:
        # Instant creates; memberships take 1 s each, so the stop finds the replay under way.
        return healthy(call) if call.operation != "AddThingToThingGroup" else slow(1.0)(call)

    async def respond(call: Call) -> Reply:
        result = answer(call)
        return result if isinstance(result, Reply) else await result  # type: ignore[no-any-return]

    path = tmp_path / "j.jsonl"
    registry = BucketRegistry()
    for operation in ("CreateThing", "CreateThingGroup", "AddThingToThingGroup"):
        registry.override("iot", operation, 1e6)
    replaying = anyio.Event()

    def sink(event: Event) -> None:
        if isinstance(event, ItemFinished) and event.step == "membership":
            replaying.set()

    engine = Engine(job, MockTransport(respond), sink=sink, registry=registry)
    engine.journal = Journal(path, job.name)

    async def stopper() -> None:
        await replaying.wait()
        engine.stop("test stop", exit_code=143)

    async with anyio.create_task_group() as tg:
        tg.start_soon(stopper)
        summary = await engine.run()
    engine.journal.close()
    assert summary.stopped is not None and summary.exit_code == 143
    assert summary.failures_total == 0
    assert summary.steps["things"].ok == 1500
    assert 0 < summary.steps["membership"].ok < 1500

    resumed, _ = await run_engine(job, MockTransport(healthy), path, resume=True, registry=registry)
    assert resumed.stopped is None and resumed.exit_code == 0
    counts = ok_counts([path])
    assert len(counts) == 1500 + 1 + 1500
    assert set(counts.values()) == {1}
