"""The emulator's pipeline: routing, wire formats, errors, throttling, faults, admin API."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import botocore.exceptions
import pytest

from harness.emulator import EmulatorThread

SIG = "AWS4-HMAC-SHA256 Credential={key}/20261122/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
TARGET = "arn:aws:iot:us-east-1:123456789012:thinggroup/fleet"


def raw(
    emu: EmulatorThread,
    method: str,
    path: str,
    body: bytes | None = None,
    service: str | None = "iot",
    headers: dict[str, str] | None = None,
    key: str = "AKIDEXAMPLE",
    region: str = "us-east-1",
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(emu.url + path, data=body, method=method)
    if service:
        req.add_header("Authorization", SIG.format(key=key, region=region, service=service))
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = resp.read()
            return resp.status, dict(resp.headers), json.loads(data) if data else None
    except urllib.error.HTTPError as exc:
        data = exc.read()
        return exc.code, dict(exc.headers), json.loads(data) if data else None


class TestRouting:
    def test_rest_json_by_signing_name_and_template(self, harness_emulator: EmulatorThread) -> None:
        status, headers, body = raw(harness_emulator, "POST", "/things/t1", b"{}")
        assert status == 200 and body["thingName"] == "t1"
        assert headers["x-amzn-RequestId"]

    def test_literal_segment_beats_label(self, harness_emulator: EmulatorThread) -> None:
        # PUT /thing-groups/addThingToThingGroup is AddThingToThingGroup, not a group label.
        status, headers, _ = raw(
            harness_emulator,
            "PUT",
            "/thing-groups/addThingToThingGroup",
            b'{"thingGroupName": "none", "thingName": "none"}',
        )
        assert (status, headers["x-amzn-ErrorType"]) == (404, "ResourceNotFoundException")

    def test_json_protocol_by_target(self, harness_emulator: EmulatorThread) -> None:
        status, headers, body = raw(
            harness_emulator,
            "POST",
            "/",
            b"{}",
            service="proton",
            headers={
                "X-Amz-Target": "AwsProton20200720.ListEnvironmentTemplates",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        assert status == 200 and body == {"templates": []}
        assert headers["Content-Type"] == "application/x-amz-json-1.0"

    def test_unsigned_requests_route_by_target_or_path(
        self, harness_emulator: EmulatorThread
    ) -> None:
        status, _, _ = raw(harness_emulator, "GET", "/greengrass/v2/deployments", service=None)
        assert status == 200
        status, _, _body = raw(
            harness_emulator,
            "POST",
            "/",
            b"{}",
            service=None,
            headers={"X-Amz-Target": "AwsProton20200720.ListEnvironmentTemplates"},
        )
        assert status == 200

    def test_pseudo_path_for_json_protocol(self, harness_emulator: EmulatorThread) -> None:
        status, _, body = raw(
            harness_emulator,
            "POST",
            "/AwsProton20200720.ListEnvironmentTemplates",
            b"{}",
            service="proton",
        )
        assert status == 200 and body == {"templates": []}

    @pytest.mark.parametrize(
        ("method", "path", "service", "headers"),
        [
            ("GET", "/no/such/path", "iot", {}),
            ("DELETE", "/things", "iot", {}),
            ("GET", "/greengrass/groups", "greengrass", {}),  # Greengrass V1 shares the name
            ("GET", "/", "s3", {}),
        ],
    )
    def test_unknown_operation_is_an_aws_error(
        self,
        harness_emulator: EmulatorThread,
        method: str,
        path: str,
        service: str,
        headers: dict[str, str],
    ) -> None:
        status, hdrs, body = raw(harness_emulator, method, path, service=service, headers=headers)
        assert status == 404
        assert hdrs["x-amzn-ErrorType"] == "UnknownOperationException"
        assert body["message"]

    def test_unknown_json_target(self, harness_emulator: EmulatorThread) -> None:
        status, _, body = raw(
            harness_emulator,
            "POST",
            "/",
            b"{}",
            service="proton",
            headers={"X-Amz-Target": "AwsProton20200720.Nope"},
        )
        assert status == 400 and body["__type"].endswith("#UnknownOperationException")


class TestErrorsOnTheWire:
    def test_rest_json_error_header_and_message_key(self, harness_emulator: EmulatorThread) -> None:
        status, hdrs, body = raw(
            harness_emulator, "GET", "/fuota-tasks?maxResults=9999", service="iotwireless"
        )
        assert status == 400 and hdrs["x-amzn-ErrorType"] == "ValidationException"
        assert "MaxResults" in body["Message"]  # iotwireless uses a capital M

    def test_iot_validation_error_is_invalid_request(
        self, harness_emulator: EmulatorThread
    ) -> None:
        status, hdrs, body = raw(harness_emulator, "GET", "/things?maxResults=251")
        assert (status, hdrs["x-amzn-ErrorType"]) == (400, "InvalidRequestException")
        assert (
            body["message"]
            == "1 validation error detected: maxResults: value 251 is above the maximum 250"
        )

    def test_json_protocol_error_has_type_in_body(self, harness_emulator: EmulatorThread) -> None:
        status, _, body = raw(
            harness_emulator,
            "POST",
            "/",
            b'{"templateName": "t", "maxResults": 500}',
            service="proton",
            headers={"X-Amz-Target": "AwsProton20200720.ListEnvironmentTemplateVersions"},
        )
        assert status == 400
        assert body["__type"] == "com.amazonaws.proton#ValidationException"
        assert "maxResults" in body["message"]

    @pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
    def test_malformed_json_is_serialization_exception(
        self, harness_emulator: EmulatorThread, body: bytes
    ) -> None:
        status, hdrs, _data = raw(
            harness_emulator, "POST", "/greengrass/v2/deployments", body, service="greengrass"
        )
        assert status == 400 and hdrs["x-amzn-ErrorType"] == "SerializationException"

    def test_bad_query_types_are_validation_errors(self, harness_emulator: EmulatorThread) -> None:
        status, hdrs, body = raw(
            harness_emulator, "GET", "/things?maxResults=ten&usePrefixAttributeValue=maybe"
        )
        assert status == 400 and hdrs["x-amzn-ErrorType"] == "InvalidRequestException"
        assert "maxResults: expected a 32-bit integer" in body["message"]
        assert "usePrefixAttributeValue: expected a boolean" in body["message"]

    def test_bad_blob_is_serialization_exception(self, harness_emulator: EmulatorThread) -> None:
        model_ops = harness_emulator.core.models["iot-managed-integrations"].operations
        assert model_ops  # the codec reads blobs as base64; garbage is a serialization error
        from harness.emulator._wire import WireError, _read_blob

        with pytest.raises(WireError):
            _read_blob("@@@not-base64@@@")

    def test_botocore_raises_modeled_classes(self, aws_client: Any) -> None:
        iot = aws_client("iot")
        with pytest.raises(iot.exceptions.InvalidRequestException):
            iot.list_things(maxResults=251)
        gg = aws_client("greengrassv2")
        with pytest.raises(gg.exceptions.ValidationException) as info:
            gg.list_deployments(maxResults=500)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        proton = aws_client("proton")
        with pytest.raises(proton.exceptions.ValidationException):
            proton.list_environment_template_versions(templateName="t", maxResults=500)

    def test_unknown_members_are_ignored(self, harness_emulator: EmulatorThread) -> None:
        status, _, body = raw(harness_emulator, "POST", "/things/t9", b'{"futureField": 1}')
        assert status == 200 and body["thingName"] == "t9"


class TestAccountsAndRegions:
    def test_state_is_per_account_and_region(self, harness_emulator: EmulatorThread) -> None:
        raw(harness_emulator, "POST", "/things/shared", b"{}", key="111111111111")
        assert raw(harness_emulator, "GET", "/things/shared", key="111111111111")[0] == 200
        assert raw(harness_emulator, "GET", "/things/shared", key="222222222222")[0] == 404
        assert (
            raw(harness_emulator, "GET", "/things/shared", key="111111111111", region="eu-west-1")[
                0
            ]
            == 404
        )

    def test_default_account_in_arns(self, harness_emulator: EmulatorThread) -> None:
        _, _, body = raw(harness_emulator, "POST", "/things/t2", b"{}", region="eu-west-1")
        assert body["thingArn"] == "arn:aws:iot:eu-west-1:123456789012:thing/t2"


class TestThrottlingFaultsLatency:
    def test_throttle_aws_uses_quota_and_modeled_status(
        self, harness_emulator: EmulatorThread
    ) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"throttle": "aws"}))
        # ListThings: 10 TPS, burst 10 -> the 11th request within a second is throttled.
        statuses = [raw(harness_emulator, "GET", "/things")[0] for _ in range(15)]
        assert statuses[:10] == [200] * 10 and 400 in statuses[10:]
        status, hdrs, _ = raw(harness_emulator, "GET", "/things")
        assert (status, hdrs["x-amzn-ErrorType"]) == (400, "ThrottlingException")  # IoT: 400

    def test_greengrass_throttle_is_429_with_retry_after(
        self, harness_emulator: EmulatorThread
    ) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"throttle": "aws"}))
        results = [
            raw(harness_emulator, "GET", "/greengrass/v2/deployments", service="greengrass")
            for _ in range(15)
        ]
        throttled = [r for r in results if r[0] != 200]
        assert throttled and throttled[0][0] == 429
        assert int(throttled[0][1]["Retry-After"]) >= 1

    def test_botocore_sees_retry_after(
        self, harness_emulator: EmulatorThread, aws_client: Any
    ) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"throttle": "aws"}))
        gg = aws_client("greengrassv2")
        with pytest.raises(gg.exceptions.ThrottlingException) as info:
            for _ in range(20):
                gg.list_deployments()
        assert info.value.response["retryAfterSeconds"] >= 1

    def test_fault_rate_gives_500_and_nothing_else_does(
        self, harness_emulator: EmulatorThread
    ) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"fault_rate": 1.0}))
        status, hdrs, _ = raw(harness_emulator, "GET", "/things")
        assert status == 500 and hdrs["x-amzn-ErrorType"] in (
            "InternalFailureException",
            "InternalServerException",
        )
        harness_emulator.call(lambda: harness_emulator.core.configure({"fault_rate": 0.0}))
        assert raw(harness_emulator, "GET", "/things")[0] == 200

    def test_latency(self, harness_emulator: EmulatorThread) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"latency_ms": "150"}))
        start = time.perf_counter()
        raw(harness_emulator, "GET", "/things")
        assert time.perf_counter() - start >= 0.15


class TestIdempotencyPipeline:
    def test_in_flight_token_on_greengrass(self, harness_emulator: EmulatorThread) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"latency_ms": "400"}))
        body = json.dumps(
            {
                "targetArn": TARGET,
                "clientToken": "tok-1",
                "components": {"c": {"componentVersion": "1.0.0"}},
            }
        ).encode()
        results: list[tuple[int, dict[str, str], Any]] = []
        first = threading.Thread(
            target=lambda: results.append(
                raw(
                    harness_emulator,
                    "POST",
                    "/greengrass/v2/deployments",
                    body,
                    service="greengrass",
                )
            )
        )
        first.start()
        time.sleep(0.1)
        second = raw(
            harness_emulator, "POST", "/greengrass/v2/deployments", body, service="greengrass"
        )
        first.join()
        assert results[0][0] == 201
        assert (second[0], second[1]["x-amzn-ErrorType"]) == (
            400,
            "RequestAlreadyInProgressException",
        )
        third = raw(
            harness_emulator, "POST", "/greengrass/v2/deployments", body, service="greengrass"
        )
        assert third[0] == 201 and third[2] == results[0][2]

    def test_failed_request_does_not_keep_its_token(self, aws_client: Any) -> None:
        proton = aws_client("proton")
        source = {"s3": {"bucket": "my-bucket", "key": "k"}}
        with pytest.raises(proton.exceptions.ResourceNotFoundException):
            proton.create_environment_template_version(
                templateName="t", source=source, clientToken="x"
            )
        proton.create_environment_template(name="t")
        made = proton.create_environment_template_version(
            templateName="t", source=source, clientToken="x"
        )
        assert made["environmentTemplateVersion"]["templateName"] == "t"


ADMIN = {"X-Harness-Admin": "1"}


class TestAdmin:
    def test_health_stats_reset_config(self, harness_emulator: EmulatorThread) -> None:
        assert raw(harness_emulator, "GET", "/_harness/health", service=None)[2] == {"status": "ok"}
        raw(harness_emulator, "POST", "/things/a", b"{}")
        raw(harness_emulator, "GET", "/things?maxResults=999")
        _, _, stats = raw(harness_emulator, "GET", "/_harness/stats", service=None)
        assert stats["operations"]["iot.CreateThing"]["requests"] == 1
        assert stats["operations"]["iot.ListThings"]["errors"] == {"InvalidRequestException": 1}
        assert stats["resources"]["iot"]["Thing"] == 1
        status, _, cfg = raw(
            harness_emulator,
            "PUT",
            "/_harness/config",
            b'{"throttle": "aws", "latency_ms": "1:2"}',
            service=None,
            headers=ADMIN,
        )
        assert status == 200 and cfg["throttle"] == "aws" and cfg["latency_ms"] == [1.0, 2.0]
        status, _, err = raw(
            harness_emulator,
            "PUT",
            "/_harness/config",
            b'{"fault_rate": 7}',
            service=None,
            headers=ADMIN,
        )
        assert status == 400 and "fault_rate" in err["message"]
        status, _, err = raw(
            harness_emulator,
            "PUT",
            "/_harness/config",
            b'{"bogus": 1}',
            service=None,
            headers=ADMIN,
        )
        assert status == 400 and "bogus" in err["message"]
        assert (
            raw(harness_emulator, "POST", "/_harness/reset", service=None, headers=ADMIN)[0] == 200
        )
        assert raw(harness_emulator, "GET", "/things/a")[0] == 404

    def test_unknown_admin_endpoint(self, harness_emulator: EmulatorThread) -> None:
        assert raw(harness_emulator, "GET", "/_harness/nope", service=None)[0] == 404


class TestNeverFiveHundred:
    @pytest.mark.parametrize(
        ("method", "path", "body", "service", "headers"),
        [
            ("POST", "/things/" + "x" * 300, b"{}", "iot", {}),
            ("POST", "/things/%ZZ", b"{}", "iot", {}),
            ("POST", "/things/t", b"\xff\xfe", "iot", {}),
            ("POST", "/things/t", b'{"attributePayload": {"attributes": [1]}}', "iot", {}),
            ("POST", "/", b"{}", "proton", {"X-Amz-Target": "garbage"}),
            (
                "POST",
                "/",
                b"null",
                "proton",
                {"X-Amz-Target": "AwsProton20200720.ListEnvironmentTemplates"},
            ),
            ("GET", "/things?nextToken=%00%01", None, "iot", {}),
            (
                "POST",
                "/greengrass/v2/deployments",
                b'{"targetArn": 5, "components": "x"}',
                "greengrass",
                {},
            ),
        ],
    )
    def test_malformed_requests_get_4xx(
        self,
        harness_emulator: EmulatorThread,
        method: str,
        path: str,
        body: bytes | None,
        service: str,
        headers: dict[str, str],
    ) -> None:
        status, _, _ = raw(harness_emulator, method, path, body, service=service, headers=headers)
        assert 400 <= status < 500


def test_threaded_emulator_port_zero_picks_free_port() -> None:
    with EmulatorThread(port=0) as one, EmulatorThread(port=0) as two:
        assert one.url != two.url
    with pytest.raises(Exception, match="cannot listen"):
        with EmulatorThread(port=one.emulator.port) as a, EmulatorThread(port=a.emulator.port):
            pass


def test_boto3_client_error_parsing(aws_client: Any) -> None:
    iot = aws_client("iot")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        iot.describe_thing(thingName="missing")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
