"""IoT in the emulator through aiobotocore: concurrent requests keep the registry consistent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiobotocore.session
import pytest

from harness.emulator._server import EmulatorThread


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def iot(harness_emulator: EmulatorThread) -> AsyncIterator[Any]:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "iot",
        endpoint_url=harness_emulator.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:
        yield client


@pytest.mark.anyio
async def test_concurrent_identical_creates_answer_one_thing(iot: Any) -> None:
    payload = {"attributes": {"serial": "42"}}
    answers = await asyncio.gather(
        *(iot.create_thing(thingName="same", attributePayload=payload) for _ in range(20))
    )
    assert len({(a["thingId"], a["thingArn"]) for a in answers}) == 1
    groups = await asyncio.gather(*(iot.create_thing_group(thingGroupName="g") for _ in range(20)))
    assert len({g["thingGroupId"] for g in groups}) == 1


@pytest.mark.anyio
async def test_concurrent_membership_and_paging(iot: Any) -> None:
    await iot.create_thing_group(thingGroupName="fleet")
    await asyncio.gather(*(iot.create_thing(thingName=f"t{i:03d}") for i in range(300)))
    # Every thing added twice, concurrently: memberships stay one per thing.
    await asyncio.gather(
        *(
            iot.add_thing_to_thing_group(thingGroupName="fleet", thingName=f"t{i % 300:03d}")
            for i in range(600)
        )
    )
    paginator = iot.get_paginator("list_things_in_thing_group")
    listed = [
        name
        async for page in paginator.paginate(
            thingGroupName="fleet", PaginationConfig={"PageSize": 64}
        )
        for name in page["things"]
    ]
    assert sorted(listed) == [f"t{i:03d}" for i in range(300)]
    groups = await iot.list_thing_groups_for_thing(thingName="t007")
    assert [g["groupName"] for g in groups["thingGroups"]] == ["fleet"]


@pytest.mark.anyio
async def test_errors_map_to_modeled_exceptions(iot: Any) -> None:
    await iot.create_thing(thingName="t", attributePayload={"attributes": {"a": "1"}})
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as exc:
        await iot.create_thing(thingName="t")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as missing:
        await iot.list_things_in_thing_group(thingGroupName="ghost")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    await iot.create_package(packageName="fw")
    with pytest.raises(iot.exceptions.ValidationException) as invalid:
        await iot.create_package_version(packageName="nope", versionName="1")
    assert invalid.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
