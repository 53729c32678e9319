"""Managed integrations OTA tasks in the emulator, through boto3 and aiobotocore."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiobotocore.session
import botocore.exceptions
import pytest

from harness.emulator import EmulatorThread

SERVICE = "iot-managed-integrations"
S3_URL = "s3://ota-bucket/firmware/v3.bin"
ARN = re.compile(r"arn:aws:iotmanagedintegrations:us-east-1:123456789012:ota-task/([0-9a-zA-Z]+)")


@pytest.fixture
def mi(aws_client: Callable[..., Any]) -> Any:
    """A boto3 managed integrations client on the emulator."""
    return aws_client(SERVICE)


@pytest.fixture
def raw_mi(aws_client: Callable[..., Any]) -> Any:
    """A client that sends what it is given: invalid requests must reach the emulator."""
    return aws_client(SERVICE, parameter_validation=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def create(client: Any, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"S3Url": S3_URL, "OtaType": "ONE_TIME", **extra}
    response: dict[str, Any] = client.create_ota_task(**params)
    return response


def error_of(info: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


SCHEDULE = {
    "EndBehavior": "CANCEL",
    "EndTime": "2026-06-01T00:00:00Z",
    "MaintenanceWindows": [{"DurationInMinutes": 60, "StartTime": "cron(0 2 * * ? *)"}],
    "StartTime": "2026-05-01T00:00:00Z",
}
RETRY = {"RetryConfigCriteria": [{"FailureType": "TIMED_OUT", "MinNumberOfRetries": 3}]}


class TestCreateAndGet:
    def test_every_member_is_stored(self, mi: Any) -> None:
        created = create(
            mi,
            Description="spring firmware",
            Protocol="HTTP",
            Target=["thing-1", "thing-2"],
            TaskConfigurationId="cfg1",
            OtaMechanism="PUSH",
            OtaTargetQueryString="attributes.model:x1",
            OtaSchedulingConfig=SCHEDULE,
            OtaTaskExecutionRetryConfig=RETRY,
            Tags={"team": "firmware"},
        )
        assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
        match = ARN.fullmatch(created["TaskArn"])
        assert match is not None and match.group(1) == created["TaskId"]
        assert created["Description"] == "spring firmware"
        got = mi.get_ota_task(Identifier=created["TaskId"])
        assert (got["TaskId"], got["TaskArn"]) == (created["TaskId"], created["TaskArn"])
        assert got["S3Url"] == S3_URL and got["OtaType"] == "ONE_TIME"
        assert got["Protocol"] == "HTTP" and got["OtaMechanism"] == "PUSH"
        assert got["Target"] == ["thing-1", "thing-2"]
        assert got["TaskConfigurationId"] == "cfg1"
        assert got["OtaTargetQueryString"] == "attributes.model:x1"
        assert got["OtaSchedulingConfig"] == SCHEDULE
        assert got["OtaTaskExecutionRetryConfig"] == RETRY
        assert got["Tags"] == {"team": "firmware"}
        # A scheduled start: the task waits for it.
        assert got["Status"] == "SCHEDULED"
        assert got["CreatedAt"] == got["LastUpdatedAt"]
        assert 0 <= (datetime.now(UTC) - got["CreatedAt"]).total_seconds() < 60

    def test_unscheduled_task_is_in_progress_with_queued_targets(self, mi: Any) -> None:
        created = create(mi, Target=["a", "b", "c"])
        assert "Description" not in created
        got = mi.get_ota_task(Identifier=created["TaskId"])
        assert got["Status"] == "IN_PROGRESS"
        assert got["TaskProcessingDetails"]["numberOfQueuedThings"] == 3
        assert got["TaskProcessingDetails"]["numberOfSucceededThings"] == 0
        assert "Tags" not in got and "Description" not in got

    def test_get_unknown_task_is_not_found(self, mi: Any) -> None:
        with pytest.raises(mi.exceptions.ResourceNotFoundException) as info:
            mi.get_ota_task(Identifier="0123456789abcdef")
        assert error_of(info) == ("ResourceNotFoundException", 404)

    @pytest.mark.parametrize(
        ("override", "member"),
        [
            ({"OtaType": "SOMETIMES"}, "OtaType"),
            ({"Description": "no!punctuation"}, "Description"),
            ({"S3Url": ""}, "S3Url"),
            ({"TaskConfigurationId": "has-dash"}, "TaskConfigurationId"),
            ({"Tags": {}}, "Tags"),
            ({"OtaSchedulingConfig": {"MaintenanceWindows": [{"DurationInMinutes": 0}]}}, "Dur"),
            ({"ClientToken": "bad token"}, "ClientToken"),
        ],
    )
    def test_broken_constraint_is_a_validation_error(
        self, raw_mi: Any, override: dict[str, Any], member: str
    ) -> None:
        with pytest.raises(raw_mi.exceptions.ValidationException) as info:
            create(raw_mi, **override)
        assert error_of(info) == ("ValidationException", 400)
        assert member in info.value.response["Error"]["Message"]

    def test_identifier_outside_its_pattern_is_a_validation_error(self, mi: Any) -> None:
        with pytest.raises(mi.exceptions.ValidationException) as info:
            mi.get_ota_task(Identifier="not-alphanumeric")
        assert error_of(info) == ("ValidationException", 400)


class TestIdempotency:
    def test_same_token_and_params_replay_the_first_answer(self, mi: Any) -> None:
        first = create(mi, Description="d", ClientToken="token-1")
        again = create(mi, Description="d", ClientToken="token-1")
        assert (again["TaskId"], again["TaskArn"]) == (first["TaskId"], first["TaskArn"])
        assert len(mi.list_ota_tasks()["Tasks"]) == 1

    def test_same_token_other_params_is_a_conflict(self, mi: Any) -> None:
        create(mi, Description="d", ClientToken="token-1")
        with pytest.raises(mi.exceptions.ConflictException) as info:
            create(mi, Description="other", ClientToken="token-1")
        assert error_of(info) == ("ConflictException", 409)
        assert len(mi.list_ota_tasks()["Tasks"]) == 1


class TestList:
    def test_pages_through_more_than_a_thousand_tasks(self, mi: Any) -> None:
        created = [create(mi)["TaskId"] for _ in range(1_100)]
        seen: list[str] = []
        pages = 0
        kwargs: dict[str, Any] = {"MaxResults": 300}
        while True:
            page = mi.list_ota_tasks(**kwargs)
            pages += 1
            seen.extend(item["TaskId"] for item in page["Tasks"])
            if "NextToken" not in page:
                break
            kwargs["NextToken"] = page["NextToken"]
        assert pages == 4
        assert seen == created

    def test_boto3_paginator_sees_every_task(self, mi: Any) -> None:
        created = {create(mi)["TaskId"] for _ in range(120)}
        pages = mi.get_paginator("list_ota_tasks").paginate(PaginationConfig={"PageSize": 50})
        listed = [t["TaskId"] for page in pages for t in page["Tasks"]]
        assert len(listed) == 120 and set(listed) == created

    def test_summaries_fit_the_task(self, mi: Any) -> None:
        created = create(mi, TaskConfigurationId="cfg9")
        (item,) = mi.list_ota_tasks()["Tasks"]
        assert item["TaskId"] == created["TaskId"] and item["TaskArn"] == created["TaskArn"]
        assert item["TaskConfigurationId"] == "cfg9" and item["Status"] == "IN_PROGRESS"
        assert {"CreatedAt", "LastUpdatedAt"} <= item.keys()

    @pytest.mark.parametrize("size", [0, 1001])
    def test_max_results_outside_its_range_is_a_validation_error(
        self, raw_mi: Any, size: int
    ) -> None:
        # botocore itself refuses 0 (it checks min, not max): send it unchecked.
        with pytest.raises(raw_mi.exceptions.ValidationException) as info:
            raw_mi.list_ota_tasks(MaxResults=size)
        assert error_of(info) == ("ValidationException", 400)

    @pytest.mark.parametrize("token", ["garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "%%%"])
    def test_bad_next_token_is_a_validation_error(self, mi: Any, token: str) -> None:
        create(mi)
        with pytest.raises(mi.exceptions.ValidationException) as info:
            mi.list_ota_tasks(NextToken=token)
        assert error_of(info) == ("ValidationException", 400)


class TestUpdateAndDelete:
    def test_update_changes_description_and_configuration(self, mi: Any) -> None:
        task_id = create(mi, Description="before", Target=["t"])["TaskId"]
        created_at = mi.get_ota_task(Identifier=task_id)["CreatedAt"]
        answer = mi.update_ota_task(
            Identifier=task_id, Description="after", TaskConfigurationId="c2"
        )
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
        got = mi.get_ota_task(Identifier=task_id)
        assert got["Description"] == "after" and got["TaskConfigurationId"] == "c2"
        assert got["Target"] == ["t"] and got["CreatedAt"] == created_at
        assert got["LastUpdatedAt"] >= got["CreatedAt"]

    def test_update_unknown_task_is_not_found(self, mi: Any) -> None:
        with pytest.raises(mi.exceptions.ResourceNotFoundException) as info:
            mi.update_ota_task(Identifier="missing", Description="x")
        assert error_of(info) == ("ResourceNotFoundException", 404)

    def test_delete_removes_the_task_and_its_tags(self, mi: Any) -> None:
        created = create(mi, Tags={"k": "v"})
        answer = mi.delete_ota_task(Identifier=created["TaskId"])
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        with pytest.raises(mi.exceptions.ResourceNotFoundException):
            mi.get_ota_task(Identifier=created["TaskId"])
        with pytest.raises(mi.exceptions.ResourceNotFoundException):
            mi.list_tags_for_resource(ResourceArn=created["TaskArn"])
        assert mi.list_ota_tasks()["Tasks"] == []

    def test_delete_unknown_task_is_not_found(self, mi: Any) -> None:
        task_id = create(mi)["TaskId"]
        mi.delete_ota_task(Identifier=task_id)
        with pytest.raises(mi.exceptions.ResourceNotFoundException) as info:
            mi.delete_ota_task(Identifier=task_id)
        assert error_of(info) == ("ResourceNotFoundException", 404)


class TestTags:
    def test_tag_and_untag(self, mi: Any) -> None:
        arn = create(mi, Tags={"a": "1"})["TaskArn"]
        mi.tag_resource(ResourceArn=arn, Tags={"a": "2", "b": "3"})
        assert mi.list_tags_for_resource(ResourceArn=arn)["tags"] == {"a": "2", "b": "3"}
        mi.untag_resource(ResourceArn=arn, TagKeys=["a", "b", "never-set"])
        # TagsMap has at least one entry: a task without tags has no tags member.
        assert "tags" not in mi.list_tags_for_resource(ResourceArn=arn)

    def test_more_than_50_tags_is_the_validation_error(self, mi: Any) -> None:
        arn = create(mi, Tags={f"k{i}": "" for i in range(40)})["TaskArn"]
        with pytest.raises(mi.exceptions.InvalidRequestException) as info:
            mi.tag_resource(ResourceArn=arn, Tags={f"x{i}": "" for i in range(11)})
        assert error_of(info) == ("InvalidRequestException", 400)
        assert len(mi.list_tags_for_resource(ResourceArn=arn)["tags"]) == 40

    def test_unknown_task_arn_is_not_found(self, mi: Any) -> None:
        arn = "arn:aws:iotmanagedintegrations:us-east-1:123456789012:ota-task/missing0"
        with pytest.raises(mi.exceptions.ResourceNotFoundException) as info:
            mi.tag_resource(ResourceArn=arn, Tags={"a": "b"})
        assert error_of(info) == ("ResourceNotFoundException", 404)


@pytest.mark.anyio
async def test_lifecycle_with_aiobotocore(harness_emulator: EmulatorThread) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        SERVICE,
        endpoint_url=harness_emulator.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:
        created = await asyncio.gather(
            *(client.create_ota_task(S3Url=S3_URL, OtaType="CONTINUOUS") for _ in range(25))
        )
        ids = [c["TaskId"] for c in created]
        assert len(set(ids)) == 25
        listed: list[str] = []
        async for page in client.get_paginator("list_ota_tasks").paginate(
            PaginationConfig={"PageSize": 10}
        ):
            listed.extend(t["TaskId"] for t in page["Tasks"])
        assert sorted(listed) == sorted(ids)
        await client.delete_ota_task(Identifier=ids[0])
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_ota_task(Identifier=ids[0])


@pytest.mark.anyio
async def test_idempotency_with_aiobotocore(harness_emulator: EmulatorThread) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        SERVICE,
        endpoint_url=harness_emulator.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:
        first = await client.create_ota_task(S3Url=S3_URL, OtaType="ONE_TIME", ClientToken="tok")
        again = await client.create_ota_task(S3Url=S3_URL, OtaType="ONE_TIME", ClientToken="tok")
        assert again["TaskId"] == first["TaskId"]
        with pytest.raises(client.exceptions.ConflictException) as info:
            await client.create_ota_task(S3Url=S3_URL, OtaType="CONTINUOUS", ClientToken="tok")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
