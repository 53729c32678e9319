"""IoT Wireless FUOTA tasks in the emulator, through boto3 and aiobotocore."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiobotocore.session
import botocore.exceptions
import pytest

from harness.emulator import EmulatorThread

IMAGE = "s3://firmware-bucket/images/v2.bin"
ROLE = "arn:aws:iam::123456789012:role/fuota"
ARN_PREFIX = "arn:aws:iotwireless:us-east-1:123456789012:FuotaTask/"


@pytest.fixture
def wireless(aws_client: Callable[..., Any]) -> Any:
    """A boto3 IoT Wireless client on the emulator."""
    return aws_client("iotwireless")


@pytest.fixture
def raw_wireless(aws_client: Callable[..., Any]) -> Any:
    """A client that sends what it is given: invalid requests must reach the emulator."""
    return aws_client("iotwireless", parameter_validation=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def create(client: Any, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"FirmwareUpdateImage": IMAGE, "FirmwareUpdateRole": ROLE, **extra}
    response: dict[str, Any] = client.create_fuota_task(**params)
    return response


def error_of(info: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


class TestCreateAndGet:
    def test_every_member_is_stored(self, wireless: Any) -> None:
        created = create(
            wireless,
            Name="spring-rollout",
            Description="v2 firmware for the EU fleet",
            LoRaWAN={"RfRegion": "EU868"},
            Tags=[{"Key": "team", "Value": "firmware"}],
            RedundancyPercent=50,
            FragmentSizeBytes=48,
            FragmentIntervalMS=1000,
            Descriptor="AAEC",
        )
        assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
        task_id = created["Id"]
        assert created["Arn"] == ARN_PREFIX + task_id
        got = wireless.get_fuota_task(Id=task_id)
        assert got["Id"] == task_id and got["Arn"] == created["Arn"]
        assert got["Status"] == "Pending"
        assert got["Name"] == "spring-rollout"
        assert got["Description"] == "v2 firmware for the EU fleet"
        assert got["LoRaWAN"] == {"RfRegion": "EU868"}
        assert (got["FirmwareUpdateImage"], got["FirmwareUpdateRole"]) == (IMAGE, ROLE)
        assert (got["RedundancyPercent"], got["FragmentSizeBytes"], got["FragmentIntervalMS"]) == (
            50,
            48,
            1000,
        )
        assert got["Descriptor"] == "AAEC"
        age = datetime.now(UTC) - got["CreatedAt"]
        assert 0 <= age.total_seconds() < 60
        tags = wireless.list_tags_for_resource(ResourceArn=created["Arn"])["Tags"]
        assert tags == [{"Key": "team", "Value": "firmware"}]

    def test_minimal_task_omits_what_was_not_given(self, wireless: Any) -> None:
        got = wireless.get_fuota_task(Id=create(wireless)["Id"])
        assert "LoRaWAN" not in got and "Name" not in got and "RedundancyPercent" not in got
        assert got["Status"] == "Pending"

    def test_ids_are_unique(self, wireless: Any) -> None:
        ids = {create(wireless)["Id"] for _ in range(20)}
        assert len(ids) == 20

    def test_get_unknown_task_is_not_found(self, wireless: Any) -> None:
        with pytest.raises(wireless.exceptions.ResourceNotFoundException) as info:
            wireless.get_fuota_task(Id="00000000-0000-0000-0000-000000000000")
        assert error_of(info) == ("ResourceNotFoundException", 404)

    @pytest.mark.parametrize(
        ("override", "member"),
        [
            ({"LoRaWAN": {"RfRegion": "MARS1"}}, "RfRegion"),
            ({"RedundancyPercent": 101}, "RedundancyPercent"),
            ({"FragmentSizeBytes": 0}, "FragmentSizeBytes"),
            ({"FirmwareUpdateImage": ""}, "FirmwareUpdateImage"),
            ({"Descriptor": "not base64!"}, "Descriptor"),
            ({"ClientRequestToken": "spaces are not allowed"}, "ClientRequestToken"),
        ],
    )
    def test_broken_constraint_is_a_validation_error(
        self, raw_wireless: Any, override: dict[str, Any], member: str
    ) -> None:
        with pytest.raises(raw_wireless.exceptions.ValidationException) as info:
            create(raw_wireless, **override)
        assert error_of(info) == ("ValidationException", 400)
        assert member in info.value.response["Error"]["Message"]

    def test_missing_required_member_is_a_validation_error(self, raw_wireless: Any) -> None:
        with pytest.raises(raw_wireless.exceptions.ValidationException) as info:
            raw_wireless.create_fuota_task(FirmwareUpdateImage=IMAGE)
        assert error_of(info) == ("ValidationException", 400)

    def test_tasks_are_per_region(self, aws_client: Callable[..., Any], wireless: Any) -> None:
        task_id = create(wireless)["Id"]
        elsewhere = aws_client("iotwireless", region_name="eu-west-1")
        with pytest.raises(elsewhere.exceptions.ResourceNotFoundException):
            elsewhere.get_fuota_task(Id=task_id)
        assert elsewhere.list_fuota_tasks()["FuotaTaskList"] == []


class TestIdempotency:
    def test_same_token_and_params_replay_the_first_answer(self, wireless: Any) -> None:
        first = create(wireless, Name="n", ClientRequestToken="token-1")
        again = create(wireless, Name="n", ClientRequestToken="token-1")
        assert (again["Id"], again["Arn"]) == (first["Id"], first["Arn"])
        assert len(wireless.list_fuota_tasks()["FuotaTaskList"]) == 1

    def test_same_token_other_params_is_a_conflict(self, wireless: Any) -> None:
        create(wireless, Name="n", ClientRequestToken="token-1")
        with pytest.raises(wireless.exceptions.ConflictException) as info:
            create(wireless, Name="other", ClientRequestToken="token-1")
        assert error_of(info) == ("ConflictException", 409)
        assert len(wireless.list_fuota_tasks()["FuotaTaskList"]) == 1

    def test_other_tokens_create_other_tasks(self, wireless: Any) -> None:
        a = create(wireless, Name="n", ClientRequestToken="token-a")
        b = create(wireless, Name="n", ClientRequestToken="token-b")
        assert a["Id"] != b["Id"]


class TestList:
    def test_pages_through_more_than_a_thousand_tasks(self, wireless: Any) -> None:
        created = [create(wireless, Name=f"task-{i}")["Id"] for i in range(1_030)]
        seen: list[str] = []
        pages = 0
        kwargs: dict[str, Any] = {"MaxResults": 250}
        while True:
            page = wireless.list_fuota_tasks(**kwargs)
            pages += 1
            assert len(page["FuotaTaskList"]) <= 250
            seen.extend(item["Id"] for item in page["FuotaTaskList"])
            if "NextToken" not in page:
                break
            kwargs["NextToken"] = page["NextToken"]
        assert pages == 5  # 4 full pages of 250 and one of 30: the last page has no token
        assert seen == created  # creation order, no duplicates, no gaps

    def test_items_carry_id_arn_and_name(self, wireless: Any) -> None:
        named = create(wireless, Name="named")
        unnamed = create(wireless)
        items = wireless.list_fuota_tasks()["FuotaTaskList"]
        assert items == [
            {"Id": named["Id"], "Arn": named["Arn"], "Name": "named"},
            {"Id": unnamed["Id"], "Arn": unnamed["Arn"]},
        ]

    def test_zero_or_no_max_results_is_the_default_page(self, wireless: Any) -> None:
        for _ in range(60):
            create(wireless)
        for kwargs in ({}, {"MaxResults": 0}):
            page = wireless.list_fuota_tasks(**kwargs)
            assert len(page["FuotaTaskList"]) == 50 and "NextToken" in page

    def test_deleted_tasks_leave_no_gap_in_a_listing_under_way(self, wireless: Any) -> None:
        ids = [create(wireless)["Id"] for _ in range(6)]
        first = wireless.list_fuota_tasks(MaxResults=3)
        wireless.delete_fuota_task(Id=ids[4])
        rest = wireless.list_fuota_tasks(MaxResults=3, NextToken=first["NextToken"])
        listed = [t["Id"] for t in first["FuotaTaskList"] + rest["FuotaTaskList"]]
        assert listed == ids[:4] + ids[5:]

    def test_max_results_above_the_maximum_is_a_validation_error(self, wireless: Any) -> None:
        with pytest.raises(wireless.exceptions.ValidationException) as info:
            wireless.list_fuota_tasks(MaxResults=251)
        assert error_of(info) == ("ValidationException", 400)

    @pytest.mark.parametrize("token", ["garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "%%%"])
    def test_bad_next_token_is_a_validation_error(self, wireless: Any, token: str) -> None:
        create(wireless)
        with pytest.raises(wireless.exceptions.ValidationException) as info:
            wireless.list_fuota_tasks(NextToken=token)
        assert error_of(info) == ("ValidationException", 400)


class TestUpdateStartDelete:
    def test_update_changes_only_what_is_given(self, wireless: Any) -> None:
        task_id = create(wireless, Name="before", LoRaWAN={"RfRegion": "EU868"})["Id"]
        answer = wireless.update_fuota_task(
            Id=task_id, Description="after", LoRaWAN={"RfRegion": "US915"}, FragmentSizeBytes=24
        )
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
        got = wireless.get_fuota_task(Id=task_id)
        assert got["Name"] == "before" and got["Description"] == "after"
        assert got["LoRaWAN"]["RfRegion"] == "US915" and got["FragmentSizeBytes"] == 24
        assert (got["FirmwareUpdateImage"], got["FirmwareUpdateRole"]) == (IMAGE, ROLE)

    def test_update_replaces_the_firmware(self, wireless: Any) -> None:
        task_id = create(wireless)["Id"]
        wireless.update_fuota_task(Id=task_id, FirmwareUpdateImage="s3://b/v3.bin")
        got = wireless.get_fuota_task(Id=task_id)
        assert (got["FirmwareUpdateImage"], got["FirmwareUpdateRole"]) == ("s3://b/v3.bin", ROLE)

    def test_update_unknown_task_is_not_found(self, wireless: Any) -> None:
        with pytest.raises(wireless.exceptions.ResourceNotFoundException) as info:
            wireless.update_fuota_task(Id="missing", Name="x")
        assert error_of(info) == ("ResourceNotFoundException", 404)

    def test_start_moves_the_task_on_and_freezes_it(self, wireless: Any) -> None:
        task_id = create(wireless, LoRaWAN={"RfRegion": "EU868"})["Id"]
        start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        wireless.start_fuota_task(Id=task_id, LoRaWAN={"StartTime": start})
        got = wireless.get_fuota_task(Id=task_id)
        assert got["Status"] == "FuotaSession_Waiting"
        assert got["LoRaWAN"] == {"RfRegion": "EU868", "StartTime": start}
        with pytest.raises(wireless.exceptions.ConflictException) as info:
            wireless.start_fuota_task(Id=task_id)
        assert error_of(info) == ("ConflictException", 409)
        with pytest.raises(wireless.exceptions.ConflictException):
            wireless.update_fuota_task(Id=task_id, Name="too late")

    def test_start_unknown_task_is_not_found(self, wireless: Any) -> None:
        with pytest.raises(wireless.exceptions.ResourceNotFoundException):
            wireless.start_fuota_task(Id="missing")

    def test_delete_removes_the_task_and_its_tags(self, wireless: Any) -> None:
        created = create(wireless, Tags=[{"Key": "k", "Value": "v"}])
        answer = wireless.delete_fuota_task(Id=created["Id"])
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
        with pytest.raises(wireless.exceptions.ResourceNotFoundException):
            wireless.get_fuota_task(Id=created["Id"])
        with pytest.raises(wireless.exceptions.ResourceNotFoundException):
            wireless.list_tags_for_resource(ResourceArn=created["Arn"])
        assert wireless.list_fuota_tasks()["FuotaTaskList"] == []

    def test_delete_unknown_task_is_not_found(self, wireless: Any) -> None:
        task_id = create(wireless)["Id"]
        wireless.delete_fuota_task(Id=task_id)
        with pytest.raises(wireless.exceptions.ResourceNotFoundException) as info:
            wireless.delete_fuota_task(Id=task_id)
        assert error_of(info) == ("ResourceNotFoundException", 404)


class TestTags:
    def test_tag_and_untag(self, wireless: Any) -> None:
        arn = create(wireless, Tags=[{"Key": "a", "Value": "1"}])["Arn"]
        wireless.tag_resource(
            ResourceArn=arn, Tags=[{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}]
        )
        wireless.untag_resource(ResourceArn=arn, TagKeys=["b", "never-set"])
        assert wireless.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
            {"Key": "a", "Value": "2"}
        ]

    def test_more_than_200_tags_is_refused(self, wireless: Any) -> None:
        arn = create(wireless, Tags=[{"Key": f"k{i}", "Value": ""} for i in range(150)])["Arn"]
        extra = [{"Key": f"x{i}", "Value": ""} for i in range(51)]
        with pytest.raises(wireless.exceptions.TooManyTagsException) as info:
            wireless.tag_resource(ResourceArn=arn, Tags=extra)
        assert error_of(info) == ("TooManyTagsException", 400)
        assert len(wireless.list_tags_for_resource(ResourceArn=arn)["Tags"]) == 150

    def test_unknown_task_arn_is_not_found(self, wireless: Any) -> None:
        with pytest.raises(wireless.exceptions.ResourceNotFoundException) as info:
            wireless.tag_resource(ResourceArn=ARN_PREFIX + "missing", Tags=[])
        assert error_of(info) == ("ResourceNotFoundException", 404)

    def test_other_resource_types_are_still_answered(self, wireless: Any) -> None:
        # Not a FUOTA task: the generic handler answers, with a listing that fits the shape.
        arn = "arn:aws:iotwireless:us-east-1:123456789012:WirelessDevice/abc"
        assert "Tags" in wireless.list_tags_for_resource(ResourceArn=arn)


@pytest.mark.anyio
async def test_concurrent_creates_with_aiobotocore(harness_emulator: EmulatorThread) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "iotwireless",
        endpoint_url=harness_emulator.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:
        created = await asyncio.gather(
            *(
                client.create_fuota_task(
                    Name=f"t{i}", FirmwareUpdateImage=IMAGE, FirmwareUpdateRole=ROLE
                )
                for i in range(25)
            )
        )
        ids = {c["Id"] for c in created}
        assert len(ids) == 25
        listed = await client.list_fuota_tasks(MaxResults=250)
        assert {t["Id"] for t in listed["FuotaTaskList"]} == ids
        got = await client.get_fuota_task(Id=created[0]["Id"])
        assert got["Status"] == "Pending"


@pytest.mark.anyio
async def test_errors_with_aiobotocore(harness_emulator: EmulatorThread) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "iotwireless",
        endpoint_url=harness_emulator.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    ) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.delete_fuota_task(Id="missing")
        first = await client.create_fuota_task(
            FirmwareUpdateImage=IMAGE, FirmwareUpdateRole=ROLE, ClientRequestToken="t"
        )
        again = await client.create_fuota_task(
            FirmwareUpdateImage=IMAGE, FirmwareUpdateRole=ROLE, ClientRequestToken="t"
        )
        assert again["Id"] == first["Id"]
        with pytest.raises(client.exceptions.ConflictException):
            await client.create_fuota_task(
                FirmwareUpdateImage=IMAGE, FirmwareUpdateRole="other", ClientRequestToken="t"
            )
