"""The engine against the real emulator, through aiobotocore: fleet onboarding, throttling."""

from __future__ import annotations

from typing import Any

import pytest

from harness.emulator import EmulatorThread
from harness.engine import Engine, Event, ItemFinished, Throttled, parse_job
from harness.throttle import BucketRegistry
from harness.transport import AioBotocoreTransport

ACCOUNT, REGION = "123456789012", "us-east-1"
GROUPS, THINGS = 4, 80


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fleet_job() -> dict[str, Any]:
    return {
        "name": "fleet",
        "concurrency": 32,
        "steps": [
            {
                "name": "groups",
                "service": "iot",
                "operation": "CreateThingGroup",
                "items": {"count": GROUPS},
                "params": {"thingGroupName": "fleet-{{ index }}"},
            },
            {
                "name": "things",
                "service": "iot",
                "operation": "CreateThing",
                "items": {"count": THINGS},
                "params": {
                    "thingName": "sensor-{{ index | pad(4) }}",
                    "attributePayload": {
                        "attributes": {"group": "fleet-{{ index % " + str(GROUPS) + " }}"}
                    },
                },
            },
            {
                "name": "membership",
                "service": "iot",
                "operation": "AddThingToThingGroup",
                "items": {"from": "things"},
                "after": ["groups"],
                "params": {
                    "thingName": "{{ item.thingName }}",
                    "thingGroupName": "{{ item.attributePayload.attributes.group }}",
                },
            },
            {
                "name": "deployments",
                "service": "greengrassv2",
                "operation": "CreateDeployment",
                "items": {"from": "groups"},
                "params": {
                    "targetArn": "{{ item.thingGroupArn }}",
                    "deploymentName": "baseline-{{ item.thingGroupName }}",
                    "components": {"aws.greengrass.Nucleus": {"componentVersion": "2.12.0"}},
                },
            },
            {
                "name": "verify",
                "kind": "list",
                "service": "iot",
                "operation": "ListThingsInThingGroup",
                "items": {"from": "groups"},
                "after": ["membership"],
                "expect_items": THINGS // GROUPS,
                "params": {"thingGroupName": "{{ item.thingGroupName }}", "maxResults": 7},
            },
        ],
    }


def transport(emulator: EmulatorThread, **kwargs: Any) -> AioBotocoreTransport:
    return AioBotocoreTransport(
        endpoint_url=emulator.url, region=REGION, credentials=("AKIDEXAMPLE", "x"), **kwargs
    )


def fast_registry() -> BucketRegistry:
    return BucketRegistry(lambda service, operation: 10_000.0)


@pytest.mark.anyio
async def test_fleet_onboarding(harness_emulator: EmulatorThread) -> None:
    events: list[Event] = []
    listed: dict[str, list[Any]] = {}

    def collect(step: str, key: str, items: list[Any]) -> None:
        listed.setdefault(key, []).extend(items)

    async with transport(harness_emulator) as client:
        engine = Engine(
            parse_job(fleet_job()),
            client,
            sink=events.append,
            registry=fast_registry(),
            item_sink=collect,
        )
        summary = await engine.run()

    failures = [e for e in events if isinstance(e, ItemFinished) and e.status != "ok"]
    assert failures == []
    assert summary.exit_code == 0
    assert {name: c.ok for name, c in summary.steps.items()} == {
        "groups": GROUPS,
        "things": THINGS,
        "membership": THINGS,
        "deployments": GROUPS,
        "verify": GROUPS,
    }
    # the verify listings paged (7 per page) and saw exactly each group's things
    assert sorted(len(v) for v in listed.values()) == [THINGS // GROUPS] * GROUPS
    assert sorted(n for names in listed.values() for n in names) == [
        f"sensor-{i:04d}" for i in range(THINGS)
    ]
    assert summary.stats.stats("iot.ListThingsInThingGroup").attempts == GROUPS * 3

    def counts() -> tuple[int, int, dict[str, int], int]:
        core = harness_emulator.core
        iot = core.state(ACCOUNT, REGION, "iot")
        per_group = {g.name: len(g.things) for g in iot.groups.values()}
        greengrass = core.state(ACCOUNT, REGION, "greengrassv2")
        return len(iot.things), len(iot.groups), per_group, len(greengrass.deployments)

    things, groups, per_group, deployments = harness_emulator.call(counts)
    assert (things, groups, deployments) == (THINGS, GROUPS, GROUPS)
    assert per_group == {f"fleet-{i}": THINGS // GROUPS for i in range(GROUPS)}

    stats = harness_emulator.call(harness_emulator.core.stats)
    operations = stats["operations"]
    assert operations["iot.CreateThing"]["requests"] == THINGS
    assert operations["greengrassv2.CreateDeployment"]["requests"] == GROUPS


@pytest.mark.anyio
async def test_a_rerun_creates_nothing_new(harness_emulator: EmulatorThread) -> None:
    # Creates are idempotent: the same job again answers the same resources (names and derived
    # client tokens), so the counts do not change.
    job = parse_job(fleet_job())
    for _ in range(2):
        async with transport(harness_emulator) as client:
            summary = await Engine(job, client, registry=fast_registry()).run()
        assert summary.exit_code == 0

    def counts() -> tuple[int, int]:
        core = harness_emulator.core
        iot = core.state(ACCOUNT, REGION, "iot")
        return len(iot.things), len(core.state(ACCOUNT, REGION, "greengrassv2").deployments)

    assert harness_emulator.call(counts) == (THINGS, GROUPS)


@pytest.mark.anyio
async def test_throttling_is_absorbed(harness_emulator: EmulatorThread) -> None:
    # The engine is told CreateThingGroup may go at 250 TPS; the emulator enforces the 25 TPS
    # quota. (A small quota: a loaded machine's client still goes well beyond it.)
    harness_emulator.call(lambda: harness_emulator.core.configure({"throttle": "aws"}))
    job = parse_job(
        {
            "name": "burst",
            "concurrency": 64,
            "retries": {"max_attempts": 20, "base_delay": 0.05, "max_delay": 1},
            "steps": [
                {
                    "name": "things",
                    "service": "iot",
                    "operation": "CreateThingGroup",
                    "items": {"count": 150},
                    "params": {"thingGroupName": "burst-{{ index }}"},
                }
            ],
        }
    )
    registry = BucketRegistry()
    registry.override("iot", "CreateThingGroup", 250)
    events: list[Event] = []
    async with transport(harness_emulator, max_connections=64) as client:
        summary = await Engine(job, client, sink=events.append, registry=registry).run()

    assert summary.exit_code == 0
    assert summary.steps["things"].ok == 150
    throttled = [e for e in events if isinstance(e, Throttled)]
    assert throttled
    assert min(e.rate for e in throttled) < 250
    stats = summary.stats.stats("iot.CreateThingGroup")
    assert stats.throttles > 0
    assert stats.retries > 0
    assert max(e.attempts for e in events if isinstance(e, ItemFinished)) > 1

    emulator_stats = harness_emulator.call(harness_emulator.core.stats)
    create = emulator_stats["operations"]["iot.CreateThingGroup"]
    assert create["throttles"] > 0
    assert create["requests"] == 150 + create["throttles"]
    assert (
        harness_emulator.call(
            lambda: len(harness_emulator.core.state(ACCOUNT, REGION, "iot").groups)
        )
        == 150
    )
