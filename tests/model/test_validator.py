"""The full validator: every constraint kind, paths, and what botocore lets through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.model import ServiceModel as BotocoreServiceModel
from botocore.validate import ParamValidator

from harness.model import ValidationIssue, Validator, format_issues, load_service
from harness.model._shapes import build_shapes
from harness.model._specs import read_model_files

TARGET = "arn:aws:iot:us-east-1:123456789012:thinggroup/fleet"


def issues(service: str, operation: str, params: dict[str, object]) -> list[tuple[str, str]]:
    found = load_service(service).operation(operation).validate(params)
    return [(i.path, i.constraint) for i in found]


def botocore_accepts(service: str, operation: str, params: dict[str, object]) -> bool:
    model, _, _ = read_model_files(service)
    op = BotocoreServiceModel(model, service).operation_model(operation)
    return not ParamValidator().validate(params, op.input_shape).has_errors()


class TestWhatBotocoreLetsThrough:
    """botocore checks required, types and min; AWS (and we) also check max, pattern, enum."""

    @pytest.mark.parametrize(
        ("service", "operation", "params", "expected"),
        [
            ("greengrassv2", "ListDeployments", {"maxResults": 500}, [("maxResults", "max")]),
            ("iot", "CreateThing", {"thingName": "my thing"}, [("thingName", "pattern")]),
            ("iot", "CreateThing", {"thingName": "x" * 129}, [("thingName", "max")]),
            (
                "proton",
                "ListEnvironmentTemplateVersions",
                {"templateName": "t", "maxResults": 500},
                [("maxResults", "max")],
            ),
            ("iot", "ListThings", {"maxResults": 251}, [("maxResults", "max")]),
            (
                "greengrassv2",
                "ListDeployments",
                {"historyFilter": "NEWEST"},
                [("historyFilter", "enum")],
            ),
        ],
    )
    def test_rejected_here_accepted_by_botocore(
        self,
        service: str,
        operation: str,
        params: dict[str, object],
        expected: list[tuple[str, str]],
    ) -> None:
        assert botocore_accepts(service, operation, params)
        assert issues(service, operation, params) == expected


class TestPaths:
    def test_nested_map_path(self) -> None:
        params = {
            "targetArn": TARGET,
            "components": {
                "com.example.app": {
                    "componentVersion": "1.0.0",
                    "runWith": {"systemResourceLimits": {"cpus": -0.5}},
                }
            },
        }
        found = load_service("greengrassv2").operation("CreateDeployment").validate(params)
        assert found == [
            ValidationIssue(
                'components["com.example.app"].runWith.systemResourceLimits.cpus',
                "min",
                "value -0.5 is below the minimum 0",
            )
        ]

    def test_list_index_path(self) -> None:
        params = {
            "Name": "t",
            "FirmwareUpdateImage": "s3://b/k",
            "FirmwareUpdateRole": "arn:aws:iam::123456789012:role/r",
            "Tags": [{"Key": "ok", "Value": "v"}, {"Key": "k" * 129, "Value": "v"}],
        }
        assert issues("iotwireless", "CreateFuotaTask", params) == [("Tags[1].Key", "max")]

    def test_map_key_issue_names_the_key(self) -> None:
        params = {"targetArn": TARGET, "components": {"": {"componentVersion": "1"}}}
        found = load_service("greengrassv2").operation("CreateDeployment").validate(params)
        assert [(i.path, i.constraint) for i in found] == [('components[""]', "min")]
        assert found[0].message.startswith("key ")


class TestConstraintKinds:
    def test_required_and_none_counts_as_missing(self) -> None:
        assert issues("iot", "CreateThing", {}) == [("thingName", "required")]
        assert issues("iot", "CreateThing", {"thingName": None}) == [("thingName", "required")]

    def test_unknown_member(self) -> None:
        assert issues("iot", "CreateThing", {"thingName": "a", "thingname": "b"}) == [
            ("thingname", "unknown")
        ]

    @pytest.mark.parametrize("value", ["10", 1.5, True, None.__class__, 2**40])
    def test_integer_types(self, value: object) -> None:
        assert issues("greengrassv2", "ListDeployments", {"maxResults": value}) == [
            ("maxResults", "type")
        ]

    def test_float_rejects_bool_and_nan(self) -> None:
        base = {
            "targetArn": TARGET,
            "components": {"c": {"componentVersion": "1", "runWith": {"systemResourceLimits": {}}}},
        }
        limits = base["components"]["c"]["runWith"]["systemResourceLimits"]  # type: ignore[index]
        path = 'components["c"].runWith.systemResourceLimits.cpus'
        for bad in (True, float("nan"), float("inf"), "1.0"):
            limits["cpus"] = bad
            assert issues("greengrassv2", "CreateDeployment", base) == [(path, "type")]
        limits["cpus"] = 2
        assert issues("greengrassv2", "CreateDeployment", base) == []

    def test_string_type_and_length(self) -> None:
        assert issues("iot", "CreateThing", {"thingName": 5}) == [("thingName", "type")]
        # A value that failed its length is never matched against its pattern.
        assert issues("iot", "CreateThing", {"thingName": ""}) == [("thingName", "min")]
        assert issues("iot", "CreateThing", {"thingName": "x" * 129 + " "}) == [
            ("thingName", "max")
        ]
        assert issues("iot", "CreateThing", {"thingName": "x y"}) == [("thingName", "pattern")]

    def test_enum_failure_skips_the_pattern(self) -> None:
        raw = {"S": {"type": "string", "enum": ["GOOD"], "pattern": "[A-Z]+", "max": 8}}
        shape = build_shapes(raw)["S"]
        assert [i.constraint for i in Validator().validate_shape(shape, "bad")] == ["enum"]

    def test_enum(self) -> None:
        assert issues("iot", "ListPackageVersions", {"packageName": "p", "status": "LIVE"}) == [
            ("status", "enum")
        ]

    def test_union_exactly_one(self) -> None:
        op = "CreateEnvironmentTemplateVersion"
        good = {"templateName": "t", "source": {"s3": {"bucket": "my-bucket", "key": "k"}}}
        assert issues("proton", op, good) == []
        assert issues("proton", op, {"templateName": "t", "source": {}}) == [("source", "union")]

    def test_list_count(self) -> None:
        params = {"S3Url": "s3://b/k", "OtaType": "ONE_TIME", "Target": []}
        found = issues("iot-managed-integrations", "CreateOtaTask", params)
        shape = load_service("iot-managed-integrations").operation("CreateOtaTask").input
        assert shape is not None
        target = shape.members["Target"].shape
        if target.min:
            assert ("Target", "min") in found
        else:
            assert found == []

    def test_map_count_and_values(self) -> None:
        attrs = {f"k{i}": "v" for i in range(3)}
        ok = {"packageName": "p", "versionName": "1.0", "attributes": attrs}
        assert issues("iot", "CreatePackageVersion", ok) == []

    def test_timestamps(self) -> None:
        # A structure with a timestamp member: accepted as datetime, epoch or ISO 8601.
        model = load_service("iot-managed-integrations")
        shape = next(s for s in model.shapes.values() if s.type == "timestamp")
        validator = model.validator
        for good in (datetime.now(UTC), 1_700_000_000, 1.7e9, "2026-11-22T10:00:00Z"):
            assert validator.validate_shape(shape, good) == []
        assert validator.validate_shape(shape, "yesterday")[0].constraint == "type"

    def test_sensitive_values_are_not_echoed(self) -> None:
        model = load_service("proton")
        sensitive = next(
            s for s in model.shapes.values() if s.sensitive and s.type == "string" and s.max
        )
        found = model.validator.validate_shape(sensitive, "x" * (int(sensitive.max or 0) + 1))
        assert all("xxxx" not in i.message for i in found)

    def test_no_input_operation(self) -> None:
        model = load_service("iot")
        op = next(o for o in model.operations.values() if o.input is None or not o.input.members)
        assert op.validate({}) == []


class TestFormatting:
    def test_format_issues(self) -> None:
        found = load_service("iot").operation("CreateThing").validate({"thingName": "a b"})
        text = format_issues(found)
        assert text.startswith("1 validation error detected: thingName: ")
        assert "[a-zA-Z0-9:_-]+" in text
