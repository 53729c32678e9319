"""The oracle's named checks, the safety rules and the report, on answers built by hand."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.fuzz import (
    CHECKS,
    Breakage,
    Cleanup,
    FuzzReport,
    SafetyPolicy,
    Violation,
    load_baseline,
    write_baseline,
    write_junit,
)
from harness.fuzz._oracle import (
    check_error,
    check_invalid,
    check_valid,
    conflict_codes,
    ids_of,
)
from harness.fuzz._properties import CheckFailed, collect, fail, fresh_token, stable
from harness.fuzz._resources import teardown_of
from harness.fuzz._safety import RUN_TAG, WRITE_OPERATIONS, is_read_only
from harness.fuzz._sendable import beyond_http_limits, unsendable
from harness.model import load_service
from harness.transport import Reply

IOT = load_service("iot")
GG = load_service("greengrassv2")
PROTON = load_service("proton")


def checks(findings: list[Any]) -> list[str]:
    return sorted(f.check for f in findings)


def error(code: str, status: int, message: str = "", **headers: str) -> Reply:
    body = orjson.dumps(
        {
            "message": message,
            **({"__type": headers.pop("body_type")} if "body_type" in headers else {}),
        }
    )
    return Reply(status, error_code=code, error_message=message, headers=headers, body=body)


class TestValidAccepted:
    def test_a_conforming_success_passes(self) -> None:
        op = IOT.operation("CreateThing")
        reply = Reply(
            200,
            output={
                "thingName": "t",
                "thingArn": "arn:aws:iot:us-east-1:1:thing/t",
                "thingId": "i",
            },
        )
        assert check_valid(op, reply) == []

    def test_a_business_error_the_operation_declares_passes(self) -> None:
        op = IOT.operation("DescribeThing")
        reply = error(
            "ResourceNotFoundException",
            404,
            "Thing t does not exist",
            **{"x-amzn-ErrorType": "ResourceNotFoundException"},
        )
        assert check_valid(op, reply) == []

    def test_the_models_validation_error_fails(self) -> None:
        op = IOT.operation("CreateThing")
        reply = error(
            "InvalidRequestException",
            400,
            "1 validation error detected: Value 'x' at 'thingName' failed",
        )
        assert checks(check_valid(op, reply)) == ["valid-accepted"]

    def test_a_refusal_for_meaning_passes(self) -> None:
        # Handlers refuse valid requests for what they mean (an unknown parent), in their words.
        op = IOT.operation("CreateThingGroup")
        reply = error("InvalidRequestException", 400, "The parent thing group p does not exist")
        assert check_valid(op, reply) == []

    def test_a_5xx_fails_two_checks(self) -> None:
        op = IOT.operation("ListThings")
        assert checks(check_valid(op, error("InternalFailureException", 500))) == [
            "no-5xx",
            "valid-accepted",
        ]

    def test_no_answer_at_all_is_a_5xx(self) -> None:
        op = IOT.operation("ListThings")
        reply = Reply(0, error_code="HTTPClientError", error_message="Bad status line")
        found = check_valid(op, reply)
        assert "no-5xx" in checks(found)
        assert (
            "Bad status line" not in found[0].message
        )  # details go to the body, not the fingerprint


class TestResponseConforms:
    def test_a_wrong_enum_fails(self) -> None:
        op = GG.operation("ListDeployments")
        item = {"deploymentId": "d", "deploymentStatus": "EXPLODED"}
        found = check_valid(op, Reply(200, output={"deployments": [item]}))
        assert checks(found) == ["response-conforms"]
        assert "deploymentStatus" in found[0].message

    def test_a_missing_required_member_fails(self) -> None:
        op = PROTON.operation("GetEnvironmentTemplate")
        found = check_valid(op, Reply(200, output={"environmentTemplate": {"name": "x"}}))
        assert checks(found) == ["response-conforms"]

    def test_another_success_status_fails(self) -> None:
        op = GG.operation("CreateDeployment")  # modeled 201
        found = check_valid(op, Reply(200, output={"deploymentId": "d"}))
        assert "the model gives 201" in found[0].message


class TestErrorDeclared:
    def test_an_undeclared_error_fails(self) -> None:
        op = IOT.operation("ListThings")
        assert checks(check_error(op, error("GoneFishingException", 400))) == ["error-declared"]

    @pytest.mark.parametrize(
        "code",
        [
            "ValidationException",
            "ThrottlingException",
            "AccessDeniedException",
            "UnrecognizedClientException",
        ],
    )
    def test_common_errors_pass(self, code: str) -> None:
        assert check_error(IOT.operation("ListThings"), error(code, 400)) == []

    def test_a_declared_error_with_another_status_fails(self) -> None:
        found = check_error(IOT.operation("DescribeThing"), error("ResourceNotFoundException", 400))
        assert "the model gives 404" in found[0].message

    def test_header_and_body_must_agree(self) -> None:
        op = PROTON.operation("GetEnvironmentTemplate")
        agree = error(
            "ResourceNotFoundException",
            400,
            **{
                "x-amzn-ErrorType": "ResourceNotFoundException:http://internal/",
                "body_type": "com.amazonaws.proton#ResourceNotFoundException",
            },
        )
        assert check_error(op, agree) == []
        disagree = error(
            "ResourceNotFoundException",
            400,
            **{
                "x-amzn-ErrorType": "ResourceNotFoundException",
                "body_type": "com.amazonaws.proton#ConflictException",
            },
        )
        assert (
            "the header names ResourceNotFoundException, the body ConflictException"
            in check_error(op, disagree)[0].message
        )


class TestInvalidRejected:
    def test_an_accepted_invalid_request_fails(self) -> None:
        op = IOT.operation("CreateThing")
        params = {"thingName": "x" * 129}
        found = check_invalid(
            op, params, Breakage("thingName", "max", "long"), Reply(200, output={})
        )
        assert checks(found) == ["invalid-rejected"]
        assert found[0].message == "accepted a request breaking max at thingName"

    def test_the_services_own_validation_error_passes(self) -> None:
        breakage = Breakage("thingName", "pattern", "space")
        assert (
            check_invalid(
                IOT.operation("CreateThing"),
                {"thingName": "a b"},
                breakage,
                error("InvalidRequestException", 400),
            )
            == []
        )

    def test_another_services_validation_error_fails(self) -> None:
        # IoT's CreateThing declares InvalidRequestException, not ValidationException.
        breakage = Breakage("thingName", "pattern", "space")
        found = check_invalid(
            IOT.operation("CreateThing"),
            {"thingName": "a b"},
            breakage,
            error("ValidationException", 400),
        )
        assert checks(found) == ["invalid-rejected"]

    def test_a_breakage_that_cannot_reach_the_wire_is_not_judged(self) -> None:
        breakage = Breakage("unexpectedMember", "unknown", "extra")
        op = IOT.operation("ListThings")
        assert (
            check_invalid(op, {"unexpectedMember": 1}, breakage, Reply(200, output={"things": []}))
            == []
        )

    def test_an_oversized_query_value_is_judged_by_no_5xx_only(self) -> None:
        op = IOT.operation("ListThings")
        params = {"nextToken": "x" * 70_000}
        breakage = Breakage("nextToken", "max", "long")
        assert check_invalid(op, params, breakage, Reply(400, error_code="400")) == []
        assert checks(check_invalid(op, params, breakage, Reply(500, error_code="500"))) == [
            "no-5xx"
        ]


class TestUnsendable:
    @pytest.mark.parametrize(
        ("params", "breakage", "reason"),
        [
            ({"thingName": 5}, Breakage("thingName", "type", ""), "text"),
            ({}, Breakage("thingName", "required", ""), "URI label"),
            (
                {"thingName": "t", "unexpectedMember": 1},
                Breakage("unexpectedMember", "unknown", ""),
                "modeled members",
            ),
            ({"thingName": ""}, Breakage("attributePayload", "type", ""), "empty"),
        ],
    )
    def test_reasons(self, params: dict[str, Any], breakage: Breakage, reason: str) -> None:
        assert reason in (unsendable(IOT.operation("CreateThing"), params, breakage) or "")

    def test_a_body_breakage_is_sendable(self) -> None:
        breakage = Breakage("attributePayload.attributes", "type", "")
        assert (
            unsendable(
                IOT.operation("CreateThing"),
                {"thingName": "t", "attributePayload": {"attributes": 5}},
                breakage,
            )
            is None
        )

    def test_what_botocore_changes_on_the_way(self) -> None:
        audit = IOT.operation("ListAuditFindings")
        assert "epoch" in (
            unsendable(audit, {"startTime": True}, Breakage("startTime", "type", "")) or ""
        )
        metric = IOT.operation("CreateCustomMetric")
        missing = Breakage("clientRequestToken", "required", "")
        assert "idempotency token" in (unsendable(metric, {"metricName": "m"}, missing) or "")

    def test_headers_and_empty_query_lists(self) -> None:
        attach = IOT.operation("AttachThingPrincipal")
        assert beyond_http_limits(attach, {"thingName": "t", "principal": "\x00"}) is not None
        assert beyond_http_limits(attach, {"thingName": "t", "principal": "arn:aws:iot:x"}) is None
        untag = load_service("iotwireless").operation("UntagResource")
        assert "missing" in (beyond_http_limits(untag, {"ResourceArn": "a", "TagKeys": []}) or "")

    def test_http_limits(self) -> None:
        op = IOT.operation("ListThings")
        assert beyond_http_limits(op, {"nextToken": "a" * 100}) is None
        assert (
            beyond_http_limits(op, {"nextToken": "/" * 2000}) is not None
        )  # percent-encoded: 6000


class TestSafety:
    def test_read_only_verbs(self) -> None:
        assert is_read_only(IOT.operation("ListThings"))
        assert is_read_only(IOT.operation("DescribeThing"))
        for name in (
            "CreateThing",
            "TagResource",
            "StartThingRegistrationTask",
            "TestAuthorization",
        ):
            assert not is_read_only(IOT.operation(name))

    def test_writes_need_the_flag_against_aws(self) -> None:
        create = IOT.operation("CreateThing")
        assert SafetyPolicy("off").refuses(create) is None
        assert "--allow-writes" in (SafetyPolicy("aws").refuses(create) or "")
        assert SafetyPolicy("aws", allow_writes=True).refuses(create) is None
        # A write whose creations the run cannot track is refused even with the flag.
        assert SafetyPolicy("aws", allow_writes=True).refuses(IOT.operation("CreateThingType"))
        assert SafetyPolicy("aws").refuses(IOT.operation("ListThings")) is None

    def test_only_invalid_writes_the_service_must_refuse_are_sent(self) -> None:
        policy = SafetyPolicy("aws")
        op = GG.operation("CreateDeployment")
        assert policy.refuses_invalid(op, {}, Breakage("targetArn", "required", "")) is None
        assert (
            policy.refuses_invalid(op, {"targetArn": 5}, Breakage("targetArn", "type", "")) is None
        )
        for kind in ("max", "pattern", "enum", "unknown"):
            assert policy.refuses_invalid(op, {"targetArn": "x"}, Breakage("targetArn", kind, ""))
        # A type breakage in a URI label arrives as text, and might be accepted.
        assert SafetyPolicy("aws").refuses_invalid(
            IOT.operation("CreateThing"), {"thingName": 5}, Breakage("thingName", "type", "")
        )

    def test_allowed_writes_send_no_invalid_request_that_could_act_unmarked(self) -> None:
        policy = SafetyPolicy("aws", allow_writes=True, run_id="abc123")
        thing = IOT.operation("CreateThing")
        # A number in the URI label arrives as the name "12345", unprefixed: it would create a
        # thing no sweep can find (this leaked from killed runs before).
        assert policy.refuses_invalid(
            thing, {"thingName": 12345}, Breakage("thingName", "type", "")
        )
        # A broken name the service might accept would be unmarked too.
        assert policy.refuses_invalid(
            thing, {"thingName": "x" * 200}, Breakage("thingName", "max", "")
        )
        group = IOT.operation("CreateThingGroup")
        assert (
            policy.refuses_invalid(
                group, {"thingGroupName": "g", "tags": 5}, Breakage("tags", "type", "")
            )
            is None
        )  # a wrong JSON type in the body: the service must refuse it
        assert policy.refuses_invalid(
            group, {"thingGroupName": "g", "tags": [{"Key": "k"}] * 60}, Breakage("tags", "max", "")
        )
        # Any other member: the name and the tag still mark the resource.
        assert (
            policy.refuses_invalid(
                thing,
                {"thingName": "t", "attributePayload": {"attributes": {"a": "x" * 900}}},
                Breakage('attributePayload.attributes["a"]', "max", ""),
            )
            is None
        )
        # Without safety (an emulator), everything is sent.
        assert (
            SafetyPolicy("off").refuses_invalid(
                thing, {"thingName": 12345}, Breakage("thingName", "type", "")
            )
            is None
        )

    def test_stamp_marks_names_and_tags(self) -> None:
        policy = SafetyPolicy("aws", allow_writes=True, run_id="abc123")
        group = policy.stamp(
            IOT.operation("CreateThingGroup"),
            {"thingGroupName": "g", "tags": [{"Key": "k", "Value": "v"}]},
        )
        assert group["thingGroupName"] == "harness-abc123-g"
        assert {"Key": RUN_TAG, "Value": "abc123"} in group["tags"]
        assert IOT.operation("CreateThingGroup").validate(group) == []
        deployment = policy.stamp(
            GG.operation("CreateDeployment"), {"targetArn": "arn:aws:iot:us-east-1:1:thing/t"}
        )
        assert deployment["tags"] == {RUN_TAG: "abc123"}
        template = policy.stamp(PROTON.operation("CreateEnvironmentTemplate"), {"name": "n" * 100})
        assert template["name"].startswith("harness-abc123-") and len(template["name"]) == 100
        assert {"key": RUN_TAG, "value": "abc123"} in template["tags"]
        # Reads, and runs that are not against AWS, are left alone.
        assert policy.stamp(IOT.operation("ListThings"), {"thingTypeName": "t"}) == {
            "thingTypeName": "t"
        }
        assert SafetyPolicy().stamp(IOT.operation("CreateThing"), {"thingName": "t"}) == {
            "thingName": "t"
        }

    def test_stamp_leaves_the_broken_member_alone(self) -> None:
        policy = SafetyPolicy("aws", run_id="abc123")
        stamped = policy.stamp(
            IOT.operation("CreateThing"), {"thingName": "t" * 200}, broken="thingName"
        )
        assert stamped["thingName"] == "t" * 200

    def test_run_ids_are_checked(self) -> None:
        with pytest.raises(ValueError, match="run_id"):
            SafetyPolicy("aws", run_id="Not Valid!")

    def test_every_tracked_create_has_a_teardown(self) -> None:
        creates = sorted((s, o) for s, o in WRITE_OPERATIONS if o.startswith("Create"))
        outputs: dict[str, Any] = {
            "deploymentId": "d",
            "Id": "f",
            "TaskId": "t",
            "environmentTemplateVersion": {"majorVersion": "1", "minorVersion": "0"},
        }
        params = {
            "thingName": "t",
            "thingGroupName": "g",
            "packageName": "p",
            "versionName": "v",
            "name": "n",
            "templateName": "n",
        }
        for service, operation in creates:
            teardown = teardown_of(service, operation, params, outputs)
            assert teardown is not None, operation
            for _, name, args in teardown.calls:
                assert load_service(service).operation(name).validate(args) == [], (name, args)


class TestReport:
    def violation(self, message: str = "accepted a request breaking max at thingName") -> Violation:
        return Violation("invalid-rejected", "iot.CreateThing", message, {"thingName": "x"}, 200)

    def test_duplicates_are_dropped_by_fingerprint(self) -> None:
        report = FuzzReport("t", "r")
        report.add([self.violation(), self.violation()])
        assert len(report.violations) == 1

    def test_baseline_round_trip(self, tmp_path: Path) -> None:
        path = tmp_path / "baseline.json"
        assert load_baseline(path) == frozenset()
        write_baseline(path, [self.violation()])
        entries = orjson.loads(path.read_bytes())
        assert entries == [
            {
                "fingerprint": self.violation().fingerprint,
                "check": "invalid-rejected",
                "operation": "iot.CreateThing",
                "message": self.violation().message,
            }
        ]
        report = FuzzReport("t", "r", known=load_baseline(path))
        report.add([self.violation(), Violation("no-5xx", "iot.ListThings", "answered 500")])
        assert [v.check for v in report.new] == ["no-5xx"]
        assert report.failed

    def test_bad_baseline(self, tmp_path: Path) -> None:
        path = tmp_path / "baseline.json"
        path.write_text('{"not": "a list"}')
        with pytest.raises(ValueError, match="baseline"):
            load_baseline(path)

    def test_messages_are_stable_across_map_keys_and_indexes(self) -> None:
        one = stable('output breaks its shape: tags["k1"].value: x; items[3].id: y')
        two = stable('output breaks its shape: tags["zz"].value: x; items[0].id: y')
        assert one == two
        assert Violation("c", "o", one).fingerprint == Violation("c", "o", two).fingerprint

    def test_junit_has_one_case_per_operation_and_check(self, tmp_path: Path) -> None:
        report = FuzzReport("t", "r")
        report.tally.record("iot.CreateThing", ["valid-accepted", "no-5xx"], [])
        report.add([self.violation()])
        write_junit(report, tmp_path / "junit.xml")
        suite = ET.parse(tmp_path / "junit.xml").getroot()
        cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
        assert set(cases) == {
            ("iot.CreateThing", n) for n in ("valid-accepted", "no-5xx", "invalid-rejected")
        }
        failure = cases[("iot.CreateThing", "invalid-rejected")].find("failure")
        assert failure is not None and "boto3" not in (failure.get("message") or "")
        assert suite.get("failures") == "1"

    def test_tally_orders_checks(self) -> None:
        report = FuzzReport("t", "r")
        report.tally.record("a.B", reversed(CHECKS), [])
        assert list(report.tally.per_check()) == list(CHECKS)


class TestFailures:
    def test_each_check_key_is_its_own_exception_type(self) -> None:
        v = Violation("no-5xx", "iot.ListThings", "answered 500")
        with pytest.raises(CheckFailed) as one:
            fail([("no-5xx", v)])
        with pytest.raises(CheckFailed) as two:
            fail([("valid-accepted", v)])
        assert type(one.value) is not type(two.value)
        with pytest.raises(ExceptionGroup) as group:
            fail([("no-5xx", v), ("valid-accepted", v)])
        assert collect(group.value) == ([v, v], [])
        fail([])  # nothing failed: nothing raised

    def test_fresh_tokens_fit_their_members(self) -> None:
        for service, operation in WRITE_OPERATIONS:
            op = load_service(service).operation(operation)
            if op.idempotency_members:
                token = fresh_token(op)
                shape = op.input.members[op.idempotency_members[0]].shape  # type: ignore[union-attr]
                assert op.service.validator.validate_shape(shape, token) == []

    def test_conflicts_are_the_declared_ones(self) -> None:
        assert conflict_codes(GG.operation("CreateDeployment")) == {"ConflictException"}
        assert conflict_codes(IOT.operation("CreateDimension")) == {
            "ResourceAlreadyExistsException"
        }
        # DeletePackage declares no conflict: its validation error stands in for one.
        assert conflict_codes(IOT.operation("DeletePackage")) == {"ValidationException"}

    def test_ids_of(self) -> None:
        output = {
            "deploymentId": "d",
            "iotJobArn": "a",
            "name": "n",
            "environmentTemplateVersion": {"majorVersion": "1", "status": "DRAFT"},
        }
        assert ids_of(output) == {
            "deploymentId": "d",
            "iotJobArn": "a",
            "environmentTemplateVersion.majorVersion": "1",
        }


def test_cleanup_is_empty_at_first() -> None:
    assert len(Cleanup()) == 0
