"""What bounds the engine's retries, and answers that say an earlier attempt is still in progress.

On trio with an autojumping MockClock: backoffs and budgets of minutes take no real time, and
``anyio.current_time()`` measures them exactly. The real thing (a real emulator with latency
behind a proxy that cuts connections) is in ``tests/engine/test_in_progress_e2e.py``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from harness.engine import Engine, Event, ItemFinished, Job, RunSummary, parse_job
from harness.model import load_service
from harness.throttle import BucketRegistry
from harness.transport import Call, MockTransport, Reply, classify, token_conflict


@pytest.fixture
def anyio_backend() -> object:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def things(n: int) -> dict[str, Any]:
    return {
        "name": "things",
        "service": "iot",
        "operation": "CreateThing",
        "items": {"count": n},
        "params": {"thingName": "dev-{{ index }}"},
    }


DEPLOYMENTS = {
    "name": "deployments",
    "service": "greengrassv2",
    "operation": "CreateDeployment",
    "items": {"count": 1},
    "params": {
        "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/g-{{ index }}",
        "deploymentName": "d-{{ index }}",
    },
}

FUOTA = {
    "name": "fuota",
    "service": "iotwireless",
    "operation": "CreateFuotaTask",
    "items": {"count": 1},
    "params": {
        "Name": "fw-{{ index }}",
        "LoRaWAN": {"RfRegion": "EU868"},
        "FirmwareUpdateImage": "s3://firmware/fw.bin",
        "FirmwareUpdateRole": "arn:aws:iam::123456789012:role/fuota",
    },
}


def job(*steps: dict[str, Any], **top: Any) -> Job:
    return parse_job({"name": "retry-job", "steps": list(steps), **top})


def failure(code: str, status: int, retry_after: float | None = None) -> Reply:
    return Reply(status, error_code=code, error_message=f"{code} says no", retry_after=retry_after)


async def run(
    job: Job, transport: MockTransport, registry: BucketRegistry | None = None
) -> tuple[RunSummary, list[ItemFinished]]:
    events: list[Event] = []
    registry = registry or BucketRegistry(lambda service, operation: 1e6)
    engine = Engine(job, transport, sink=events.append, seed=1, registry=registry)
    with anyio.fail_after(36_000):  # mock time: a deadlock fails instead of hanging
        summary = await engine.run()
    return summary, [e for e in events if isinstance(e, ItemFinished)]


class Script:
    """Answers the n-th call with the n-th reply (the last one repeats), noting the call times."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = replies
        self.times: list[float] = []
        self.calls: list[Call] = []

    def __call__(self, call: Call) -> Reply:
        self.times.append(anyio.current_time())
        self.calls.append(call)
        return self.replies[min(len(self.calls), len(self.replies)) - 1]


OK = Reply(200, output={"thingName": "dev-0"})
THROTTLED = failure("ThrottlingException", 400)
UNAVAILABLE = failure("ServiceUnavailableException", 503)
RESET = failure("ConnectionResetError", 0)


class TestBounds:
    @pytest.mark.anyio
    async def test_throttles_are_retried_for_the_time_budget_not_a_count(self) -> None:
        script = Script(THROTTLED)
        retries = {"max_attempts": 3, "max_delay": 5, "throttle_budget": 120}
        summary, (item,) = await run(job(things(1), retries=retries), MockTransport(script))
        assert (item.status, item.error_code) == ("failed", "ThrottlingException")
        # Far more than max_attempts, over the whole budget and not much beyond it.
        assert item.attempts == len(script.times) > 20
        assert 120 <= script.times[-1] - script.times[0] < 120 + 5
        assert summary.stats.stats("iot.CreateThing").throttles == item.attempts

    @pytest.mark.anyio
    async def test_a_long_throttle_storm_loses_no_item(self) -> None:
        # 40 throttles (the old bound was 8 attempts), then the service takes the call.
        script = Script(*[THROTTLED] * 40, OK)
        summary, (item,) = await run(job(things(1)), MockTransport(script))
        assert (item.status, item.attempts) == ("ok", 41)
        assert summary.exit_code == 0

    @pytest.mark.anyio
    async def test_throttles_do_not_use_up_the_transient_attempts(self) -> None:
        script = Script(THROTTLED, UNAVAILABLE, THROTTLED, THROTTLED, UNAVAILABLE, OK)
        _, (item,) = await run(job(things(1), retries={"max_attempts": 3}), MockTransport(script))
        assert (item.status, item.attempts) == ("ok", 6)

    @pytest.mark.anyio
    async def test_transient_errors_keep_their_attempt_bound(self) -> None:
        script = Script(THROTTLED, UNAVAILABLE, THROTTLED, RESET, THROTTLED, UNAVAILABLE, OK)
        _, (item,) = await run(job(things(1), retries={"max_attempts": 3}), MockTransport(script))
        assert (item.status, item.error_code, item.attempts) == (
            "failed",
            "ServiceUnavailableException",
            6,
        )

    @pytest.mark.anyio
    async def test_retry_after_holds_the_whole_bucket(self) -> None:
        # dev-0 is throttled with Retry-After: 5 at t=0; dev-1 is answered at t=0.5, and the
        # worker that sent it takes dev-2, which must wait for the bucket until t=5 too.
        sent: dict[str, float] = {}

        async def handler(call: Call) -> Reply:
            await anyio.lowlevel.checkpoint()  # both workers send before either hears back
            name = call.params["thingName"]
            first = name not in sent
            sent.setdefault(name, anyio.current_time())
            if name == "dev-0" and first:
                return failure("ThrottlingException", 429, retry_after=5.0)
            if name == "dev-1":
                await anyio.sleep(0.5)
            return Reply(200, output={"thingName": name})

        summary, _ = await run(job(things(3), concurrency=2), MockTransport(handler))
        assert summary.exit_code == 0
        assert sent["dev-1"] < 0.1
        assert sent["dev-2"] >= 5.0


def deployment(replay_id: str = "dep-1") -> Reply:
    return Reply(201, output={"deploymentId": replay_id, "iotJobId": "job-1"})


IN_PROGRESS = failure("RequestAlreadyInProgressException", 400)
CONFLICT = failure("ConflictException", 409)


class TestInProgress:
    def test_the_model_says_which_error_means_in_progress(self) -> None:
        create = load_service("greengrassv2").operation("CreateDeployment")
        assert classify(IN_PROGRESS, create) == "in_progress"
        # IoT Wireless has no such error; a conflict is only a conflict by itself.
        fuota = load_service("iotwireless").operation("CreateFuotaTask")
        assert classify(CONFLICT, fuota) == "error"
        assert token_conflict(CONFLICT, fuota)
        assert not token_conflict(failure("ValidationException", 400), fuota)
        # CreateThing takes no client token: its conflicts are never ours.
        thing = load_service("iot").operation("CreateThing")
        assert not token_conflict(failure("ResourceAlreadyExistsException", 409), thing)

    @pytest.mark.anyio
    async def test_request_already_in_progress_is_waited_for_and_the_replay_taken(self) -> None:
        # The first attempt's connection is cut; the service is still processing it for 3 s,
        # then replays its answer for the same client token.
        script = Script(RESET, *[IN_PROGRESS] * 6, deployment("dep-first"))
        summary, (item,) = await run(job(DEPLOYMENTS), MockTransport(script))
        assert (item.status, item.attempts) == ("ok", 8)
        tokens = {c.params["clientToken"] for c in script.calls}
        assert len(tokens) == 1  # one client token for every attempt
        assert summary.stats.stats("greengrassv2.CreateDeployment").failures == 0

    @pytest.mark.anyio
    async def test_in_progress_does_not_use_up_the_attempts(self) -> None:
        script = Script(RESET, *[IN_PROGRESS] * 20, deployment())
        retries = {"max_attempts": 2, "max_delay": 1}
        _, (item,) = await run(job(DEPLOYMENTS, retries=retries), MockTransport(script))
        assert (item.status, item.attempts) == ("ok", 22)

    @pytest.mark.anyio
    async def test_in_progress_forever_fails_after_its_budget(self) -> None:
        script = Script(RESET, IN_PROGRESS)
        retries = {"max_delay": 2, "in_progress_budget": 30}
        _, (item,) = await run(job(DEPLOYMENTS, retries=retries), MockTransport(script))
        assert (item.status, item.error_code) == ("failed", "RequestAlreadyInProgressException")
        assert 30 <= script.times[-1] - script.times[1] < 30 + 2

    @pytest.mark.anyio
    async def test_a_conflict_after_a_lost_answer_is_our_earlier_attempt(self) -> None:
        # IoT Wireless answers ConflictException while the first request with the token runs.
        script = Script(RESET, CONFLICT, CONFLICT, CONFLICT, Reply(201, output={"Id": "fuota-1"}))
        _, (item,) = await run(job(FUOTA), MockTransport(script))
        assert (item.status, item.attempts) == ("ok", 5)
        assert len({c.params["ClientRequestToken"] for c in script.calls}) == 1

    @pytest.mark.anyio
    async def test_a_conflict_after_a_server_error_is_our_earlier_attempt(self) -> None:
        script = Script(failure("InternalServerException", 500), CONFLICT, Reply(201, output={}))
        _, (item,) = await run(job(FUOTA), MockTransport(script))
        assert (item.status, item.attempts) == ("ok", 3)

    @pytest.mark.anyio
    async def test_a_conflict_on_the_first_attempt_is_a_real_conflict(self) -> None:
        script = Script(CONFLICT, Reply(201, output={}))
        _, (item,) = await run(job(FUOTA), MockTransport(script))
        assert (item.status, item.error_code, item.attempts) == ("failed", "ConflictException", 1)

    @pytest.mark.anyio
    async def test_a_conflict_after_only_throttles_is_a_real_conflict(self) -> None:
        # A throttled attempt was refused before any work: nothing of ours can be in flight.
        script = Script(failure("ThrottlingException", 429), CONFLICT, Reply(201, output={}))
        _, (item,) = await run(job(FUOTA), MockTransport(script))
        assert (item.status, item.error_code, item.attempts) == ("failed", "ConflictException", 2)

    @pytest.mark.anyio
    async def test_a_lasting_conflict_fails_after_the_in_progress_budget(self) -> None:
        script = Script(RESET, CONFLICT)
        retries = {"max_delay": 1, "in_progress_budget": 10}
        _, (item,) = await run(job(FUOTA, retries=retries), MockTransport(script))
        assert (item.status, item.error_code) == ("failed", "ConflictException")
        assert 10 <= script.times[-1] - script.times[1] < 10 + 1
