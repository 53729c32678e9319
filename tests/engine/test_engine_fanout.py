"""A step that waits on ``after`` never blocks the step it waits for (the fan-out deadlock)."""

from __future__ import annotations

import anyio
import pytest

from harness.engine import Engine, parse_job
from harness.throttle import BucketRegistry
from harness.transport import Call, MockTransport, Reply


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def ok(call: Call) -> Reply:
    return Reply(200, output=dict(call.params))


@pytest.mark.anyio
async def test_after_on_a_sibling_fed_by_the_same_upstream_does_not_deadlock() -> None:
    # things -> membership (after: groups) and things -> groups: with bounded channels, the
    # membership buffer fills while it waits, things blocks, and groups never finishes.
    count = 3000  # well above the channel buffer
    job = parse_job(
        {
            "name": "fanout",
            "concurrency": 16,
            "steps": [
                {
                    "name": "things",
                    "service": "iot",
                    "operation": "CreateThing",
                    "items": {"count": count},
                    "params": {"thingName": "t-{{ index }}"},
                },
                {
                    "name": "groups",
                    "service": "iot",
                    "operation": "CreateThingGroup",
                    "items": {"from": "things"},
                    "params": {"thingGroupName": "g-{{ item.thingName }}"},
                },
                {
                    "name": "membership",
                    "service": "iot",
                    "operation": "AddThingToThingGroup",
                    "items": {"from": "things"},
                    "after": ["groups"],
                    "params": {
                        "thingName": "{{ item.thingName }}",
                        "thingGroupName": "g-{{ item.thingName }}",
                    },
                },
            ],
        }
    )
    registry = BucketRegistry()
    for op in ("CreateThing", "CreateThingGroup", "AddThingToThingGroup"):
        registry.override("iot", op, 1e9)
    engine = Engine(job, MockTransport(ok), registry=registry)
    with anyio.fail_after(60):
        summary = await engine.run()
    assert {name: c.ok for name, c in summary.steps.items()} == {
        "things": count,
        "groups": count,
        "membership": count,
    }
