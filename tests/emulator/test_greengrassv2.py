"""Greengrass V2 deployments in the emulator: revisions, subdeployments, lifecycle, listing,
idempotency and pagination, through boto3 (and aiobotocore for concurrent requests)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import aiobotocore.session
import pytest

from harness.emulator._generic import GenericState
from harness.emulator._server import EmulatorThread

ACCOUNT = "123456789012"
REGION = "us-east-1"


def thing(name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}"


def group(name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{name}"


COMPONENTS = {
    "com.example.Hello": {
        "componentVersion": "1.0.0",
        "configurationUpdate": {"merge": '{"greeting": "hi"}', "reset": ["/old"]},
        "runWith": {"posixUser": "ggc_user:ggc_group", "systemResourceLimits": {"memory": 1024}},
    }
}
POLICIES = {
    "failureHandlingPolicy": "DO_NOTHING",
    "componentUpdatePolicy": {"timeoutInSeconds": 30, "action": "SKIP_NOTIFY_COMPONENTS"},
    "configurationValidationPolicy": {"timeoutInSeconds": 20},
}
JOB_CONFIG = {
    "jobExecutionsRolloutConfig": {"maximumPerMinute": 50},
    "timeoutConfig": {"inProgressTimeoutInMinutes": 10},
}


@pytest.fixture
def gg(aws_client: Callable[..., Any]) -> Any:
    return aws_client("greengrassv2")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def status_of(exc: Any) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


# --------------------------------------------------------------------------- create / get
def test_create_and_get_echo_everything(gg: Any) -> None:
    created = gg.create_deployment(
        targetArn=group("fleet"),
        deploymentName="first",
        components=COMPONENTS,
        deploymentPolicies=POLICIES,
        iotJobConfiguration=JOB_CONFIG,
        tags={"team": "edge"},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    job_id = created["iotJobId"]
    assert created["iotJobArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:job/{job_id}"
    got = gg.get_deployment(deploymentId=created["deploymentId"])
    assert got["deploymentId"] == created["deploymentId"]
    assert got["targetArn"] == group("fleet")
    assert got["revisionId"] == "1"
    assert got["deploymentName"] == "first"
    assert got["deploymentStatus"] == "ACTIVE"
    assert got["isLatestForTarget"] is True
    assert got["iotJobId"] == job_id
    assert got["iotJobArn"] == created["iotJobArn"]
    assert got["components"] == COMPONENTS
    assert got["deploymentPolicies"] == POLICIES
    assert got["iotJobConfiguration"] == JOB_CONFIG
    assert got["tags"] == {"team": "edge"}
    assert "parentTargetArn" not in got
    assert abs(got["creationTimestamp"].timestamp() - time.time()) < 60


def test_get_unknown_deployment_is_not_found(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ResourceNotFoundException) as exc:
        gg.get_deployment(deploymentId="no-such-deployment")
    assert status_of(exc) == 404
    assert exc.value.response["resourceId"] == "no-such-deployment"


def test_new_deployment_for_a_target_is_the_next_revision(gg: Any) -> None:
    ids = [gg.create_deployment(targetArn=thing("core-1"))["deploymentId"] for _ in range(3)]
    other = gg.create_deployment(targetArn=thing("core-2"))["deploymentId"]
    got = [gg.get_deployment(deploymentId=i) for i in ids]
    assert [g["revisionId"] for g in got] == ["1", "2", "3"]
    assert [g["isLatestForTarget"] for g in got] == [False, False, True]
    assert [g["deploymentStatus"] for g in got] == ["INACTIVE", "INACTIVE", "ACTIVE"]
    assert len(set(ids)) == 3
    assert gg.get_deployment(deploymentId=other)["revisionId"] == "1"


def test_superseded_canceled_revision_stays_canceled(gg: Any) -> None:
    first = gg.create_deployment(targetArn=thing("core"))["deploymentId"]
    gg.cancel_deployment(deploymentId=first)
    gg.create_deployment(targetArn=thing("core"))
    got = gg.get_deployment(deploymentId=first)
    assert (got["deploymentStatus"], got["isLatestForTarget"]) == ("CANCELED", False)


# ------------------------------------------------------------------------- subdeployments
def test_subdeployment_keeps_its_parent(gg: Any) -> None:
    gg.create_deployment(targetArn=group("parent"))
    sub = gg.create_deployment(targetArn=group("retry"), parentTargetArn=group("parent"))
    got = gg.get_deployment(deploymentId=sub["deploymentId"])
    assert got["parentTargetArn"] == group("parent")
    listed = gg.list_deployments(parentTargetArn=group("parent"))["deployments"]
    assert [d["deploymentId"] for d in listed] == [sub["deploymentId"]]
    assert listed[0]["parentTargetArn"] == group("parent")


def test_subdeployment_of_a_thing_is_rejected(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException) as exc:
        gg.create_deployment(targetArn=thing("core"), parentTargetArn=group("parent"))
    assert status_of(exc) == 400
    assert gg.list_deployments(historyFilter="ALL")["deployments"] == []


def test_subdeployment_of_its_own_parent_is_rejected(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException):
        gg.create_deployment(targetArn=group("g"), parentTargetArn=group("g"))


def test_subdeployment_group_cannot_change_parent(gg: Any) -> None:
    gg.create_deployment(targetArn=group("sub"), parentTargetArn=group("p1"))
    gg.create_deployment(targetArn=group("sub"), parentTargetArn=group("p1"))
    with pytest.raises(gg.exceptions.ValidationException):
        gg.create_deployment(targetArn=group("sub"), parentTargetArn=group("p2"))


def test_parent_arn_must_be_a_thing_group(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException):
        gg.create_deployment(targetArn=group("sub"), parentTargetArn=thing("core"))


# -------------------------------------------------------------------------------- listing
def test_list_history_filter(gg: Any) -> None:
    a1 = gg.create_deployment(targetArn=thing("a"))["deploymentId"]
    b1 = gg.create_deployment(targetArn=thing("b"))["deploymentId"]
    a2 = gg.create_deployment(targetArn=thing("a"))["deploymentId"]

    def ids(**kwargs: Any) -> list[str]:
        return [d["deploymentId"] for d in gg.list_deployments(**kwargs)["deployments"]]

    assert ids() == [b1, a2]  # LATEST_ONLY is the default
    assert ids(historyFilter="LATEST_ONLY") == [b1, a2]
    token = gg.list_deployments(maxResults=1)["nextToken"]
    page = gg.list_deployments(maxResults=1, historyFilter="LATEST_ONLY", nextToken=token)
    assert [d["deploymentId"] for d in page["deployments"]] == [a2]
    assert ids(historyFilter="ALL") == [a1, b1, a2]
    assert ids(targetArn=thing("a")) == [a2]
    assert ids(targetArn=thing("a"), historyFilter="ALL") == [a1, a2]
    assert ids(targetArn=thing("unknown"), historyFilter="ALL") == []
    summary = gg.list_deployments(targetArn=thing("a"), historyFilter="ALL")["deployments"]
    assert [(d["revisionId"], d["isLatestForTarget"]) for d in summary] == [
        ("1", False),
        ("2", True),
    ]
    assert [d["deploymentStatus"] for d in summary] == ["INACTIVE", "ACTIVE"]


def test_list_by_parent_and_history(gg: Any) -> None:
    p, q = group("p"), group("q")
    s1 = gg.create_deployment(targetArn=group("s"), parentTargetArn=p)["deploymentId"]
    t1 = gg.create_deployment(targetArn=group("t"), parentTargetArn=q)["deploymentId"]
    s2 = gg.create_deployment(targetArn=group("s"), parentTargetArn=p)["deploymentId"]
    u1 = gg.create_deployment(targetArn=group("u"), parentTargetArn=p)["deploymentId"]
    # A revision without a parent: the target's latest is no longer a subdeployment of p.
    u2 = gg.create_deployment(targetArn=group("u"))["deploymentId"]

    def ids(**kwargs: Any) -> list[str]:
        return [d["deploymentId"] for d in gg.list_deployments(**kwargs)["deployments"]]

    assert ids(parentTargetArn=p) == [s2]
    assert ids(parentTargetArn=p, historyFilter="ALL") == [s1, s2, u1]
    assert ids(parentTargetArn=q) == [t1]
    assert ids(parentTargetArn=group("none")) == []
    assert ids(targetArn=group("u"), parentTargetArn=p) == []
    assert ids(targetArn=group("u"), parentTargetArn=p, historyFilter="ALL") == [u1]
    assert ids(targetArn=group("s"), parentTargetArn=p) == [s2]
    assert ids(targetArn=group("u")) == [u2]


def test_max_results_above_the_model_maximum_is_rejected(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException) as exc:
        gg.list_deployments(maxResults=101)
    assert status_of(exc) == 400


def test_bad_next_token_is_rejected(gg: Any) -> None:
    for i in range(3):
        gg.create_deployment(targetArn=thing(f"t{i}"))
    token = gg.list_deployments(maxResults=1)["nextToken"]
    with pytest.raises(gg.exceptions.ValidationException):
        gg.list_deployments(nextToken="not-a-token")
    # A token continues only the listing it came from.
    with pytest.raises(gg.exceptions.ValidationException):
        gg.list_deployments(maxResults=1, nextToken=token, historyFilter="ALL")


def test_paginate_over_a_thousand_deployments(gg: Any) -> None:
    # 350 targets with 3 revisions each: ALL lists 1050, LATEST_ONLY 350.
    created = [
        gg.create_deployment(targetArn=thing(f"core-{i % 350}"))["deploymentId"]
        for i in range(1050)
    ]
    paginator = gg.get_paginator("list_deployments")
    pages = list(paginator.paginate(historyFilter="ALL", PaginationConfig={"PageSize": 100}))
    seen = [d["deploymentId"] for page in pages for d in page["deployments"]]
    assert len(pages) == 11
    assert "nextToken" not in pages[-1]
    assert seen == created  # creation order: no duplicates, no gaps
    latest = [
        d["deploymentId"]
        for page in paginator.paginate(PaginationConfig={"PageSize": 7})
        for d in page["deployments"]
    ]
    assert latest == created[700:]
    default_page = gg.list_deployments(historyFilter="ALL")
    assert len(default_page["deployments"]) == 50
    assert "nextToken" in default_page


# ---------------------------------------------------------------------- cancel and delete
def test_cancel_active_deployment(gg: Any) -> None:
    deployment_id = gg.create_deployment(targetArn=thing("core"))["deploymentId"]
    answer = gg.cancel_deployment(deploymentId=deployment_id)
    assert answer["message"]
    got = gg.get_deployment(deploymentId=deployment_id)
    assert (got["deploymentStatus"], got["isLatestForTarget"]) == ("CANCELED", True)
    with pytest.raises(gg.exceptions.ConflictException) as exc:
        gg.cancel_deployment(deploymentId=deployment_id)
    assert status_of(exc) == 409
    assert exc.value.response["resourceId"] == deployment_id


def test_cancel_superseded_revision_conflicts(gg: Any) -> None:
    first = gg.create_deployment(targetArn=thing("core"))["deploymentId"]
    gg.create_deployment(targetArn=thing("core"))
    with pytest.raises(gg.exceptions.ConflictException):
        gg.cancel_deployment(deploymentId=first)


def test_cancel_unknown_is_not_found(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ResourceNotFoundException) as exc:
        gg.cancel_deployment(deploymentId="missing")
    assert status_of(exc) == 404


def test_delete_requires_cancel_first(gg: Any) -> None:
    deployment_id = gg.create_deployment(targetArn=thing("core"))["deploymentId"]
    with pytest.raises(gg.exceptions.ConflictException) as exc:
        gg.delete_deployment(deploymentId=deployment_id)
    assert status_of(exc) == 409
    gg.cancel_deployment(deploymentId=deployment_id)
    answer = gg.delete_deployment(deploymentId=deployment_id)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(gg.exceptions.ResourceNotFoundException):
        gg.get_deployment(deploymentId=deployment_id)
    with pytest.raises(gg.exceptions.ResourceNotFoundException):
        gg.delete_deployment(deploymentId=deployment_id)
    assert gg.list_deployments(historyFilter="ALL")["deployments"] == []
    # Revision numbers are not reused after a delete.
    again = gg.create_deployment(targetArn=thing("core"))["deploymentId"]
    assert gg.get_deployment(deploymentId=again)["revisionId"] == "2"


def test_delete_superseded_revision_keeps_the_latest(gg: Any) -> None:
    first = gg.create_deployment(targetArn=group("g"), parentTargetArn=group("p"))
    second = gg.create_deployment(targetArn=group("g"), parentTargetArn=group("p"))
    gg.delete_deployment(deploymentId=first["deploymentId"])
    for kwargs in ({"historyFilter": "ALL"}, {}, {"parentTargetArn": group("p")}):
        listed = gg.list_deployments(**kwargs)["deployments"]
        assert [d["deploymentId"] for d in listed] == [second["deploymentId"]]
    listed = gg.list_deployments(parentTargetArn=group("p"), historyFilter="ALL")["deployments"]
    assert [d["deploymentId"] for d in listed] == [second["deploymentId"]]


def test_delete_unknown_is_not_found(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ResourceNotFoundException) as exc:
        gg.delete_deployment(deploymentId="missing")
    assert status_of(exc) == 404


# ---------------------------------------------------------------------------- idempotency
def test_same_client_token_same_params_replays(gg: Any) -> None:
    first = gg.create_deployment(targetArn=thing("core"), clientToken="token-1")
    again = gg.create_deployment(targetArn=thing("core"), clientToken="token-1")
    assert again["deploymentId"] == first["deploymentId"]
    assert again["iotJobId"] == first["iotJobId"]
    assert len(gg.list_deployments(historyFilter="ALL")["deployments"]) == 1


def test_same_client_token_other_params_conflicts(gg: Any) -> None:
    gg.create_deployment(targetArn=thing("core"), clientToken="token-2")
    with pytest.raises(gg.exceptions.ConflictException) as exc:
        gg.create_deployment(targetArn=thing("other"), clientToken="token-2")
    assert status_of(exc) == 409


def test_failed_request_does_not_burn_its_client_token(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException):
        gg.create_deployment(
            targetArn=thing("core"), parentTargetArn=group("p"), clientToken="token-3"
        )
    created = gg.create_deployment(targetArn=group("g"), clientToken="token-3")
    assert gg.get_deployment(deploymentId=created["deploymentId"])["targetArn"] == group("g")


def test_token_in_flight_is_already_in_progress_threads(
    gg: Any, aws_client: Callable[..., Any], harness_emulator: EmulatorThread
) -> None:
    harness_emulator.call(lambda: harness_emulator.core.configure({"latency_ms": [300, 300]}))
    clients = [gg, aws_client("greengrassv2")]
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def call(i: int) -> None:
        barrier.wait()
        if i == 1:
            time.sleep(0.05)  # the first request is in flight (sleeping its latency) by now
        try:
            results[i] = clients[i].create_deployment(targetArn=thing("c"), clientToken="inflight")
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # Whichever arrived first wins; the other finds its token in flight.
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, gg.exceptions.RequestAlreadyInProgressException)]
    assert (len(won), len(lost)) == (1, 1), results
    assert lost[0].response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Once the first answer exists, the same request replays it.
    replay = gg.create_deployment(targetArn=thing("c"), clientToken="inflight")
    assert replay["deploymentId"] == won[0]["deploymentId"]


@pytest.mark.anyio
async def test_token_in_flight_is_already_in_progress_async(
    harness_emulator: EmulatorThread,
) -> None:
    harness_emulator.call(lambda: harness_emulator.core.configure({"latency_ms": [300, 300]}))
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "greengrassv2",
        endpoint_url=harness_emulator.url,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:

        async def create(delay: float) -> Any:
            await asyncio.sleep(delay)
            return await client.create_deployment(targetArn=thing("c"), clientToken="async-tok")

        results = await asyncio.gather(create(0.0), create(0.1), return_exceptions=True)
        won = [r for r in results if isinstance(r, dict)]
        in_progress = client.exceptions.RequestAlreadyInProgressException
        lost = [r for r in results if isinstance(r, in_progress)]
        assert (len(won), len(lost)) == (1, 1), results
        listed = await client.list_deployments(historyFilter="ALL")
        assert [d["deploymentId"] for d in listed["deployments"]] == [won[0]["deploymentId"]]


@pytest.mark.anyio
async def test_concurrent_revisions_async(harness_emulator: EmulatorThread) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "greengrassv2",
        endpoint_url=harness_emulator.url,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:
        await asyncio.gather(*(client.create_deployment(targetArn=group("g")) for _ in range(20)))
        listed = await client.list_deployments(targetArn=group("g"), historyFilter="ALL")
        revisions = [d["revisionId"] for d in listed["deployments"]]
        assert revisions == [str(i) for i in range(1, 21)]
        assert sum(d["isLatestForTarget"] for d in listed["deployments"]) == 1
        assert [d["deploymentStatus"] for d in listed["deployments"]].count("ACTIVE") == 1


def test_stats_and_generic_operations_still_work(gg: Any, harness_emulator: EmulatorThread) -> None:
    gg.create_deployment(targetArn=thing("core"))
    assert gg.list_components()["components"] == []  # answered generically
    core = harness_emulator.core
    state = harness_emulator.call(lambda: core.state(ACCOUNT, REGION, "greengrassv2"))
    # The generic handler keeps its tables only in a GenericState.
    assert isinstance(state, GenericState)
    stats = harness_emulator.call(core.stats)
    assert stats["resources"]["greengrassv2"]["Deployment"] == 1
