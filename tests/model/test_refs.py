"""Operation references: one syntax for --rate, -o, thresholds, scenarios, job files and fuzz."""

from __future__ import annotations

import pytest

from harness.errors import InvalidArgument, UnknownOperation, UnknownService
from harness.model import parse_operation_ref, split_operation_ref


class TestSplit:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("iot:CreateThing", ("iot", "CreateThing")),
            ("iot.CreateThing", ("iot", "CreateThing")),
            ("CreateThing", (None, "CreateThing")),
            ("create_thing", (None, "create_thing")),
            ("iot:create_thing", ("iot", "create_thing")),
            (
                "iot-managed-integrations:CreateOtaTask",
                ("iot-managed-integrations", "CreateOtaTask"),
            ),
            (
                "iot-managed-integrations.create_ota_task",
                ("iot-managed-integrations", "create_ota_task"),
            ),
            (" iot:CreateThing ", ("iot", "CreateThing")),
        ],
    )
    def test_every_spelling(self, text: str, expected: tuple[str | None, str]) -> None:
        assert split_operation_ref(text) == expected

    @pytest.mark.parametrize(
        "text", ["", "iot:", ":CreateThing", "iot::CreateThing", "a:b:C", "iot CreateThing", "1x"]
    )
    def test_bad_syntax_is_refused_with_the_forms(self, text: str) -> None:
        with pytest.raises(InvalidArgument, match="service:Operation"):
            split_operation_ref(text)


class TestResolve:
    @pytest.mark.parametrize(
        "text",
        ["iot:CreateThing", "iot.CreateThing", "CreateThing", "create_thing", "iot:create_thing"],
    )
    def test_every_spelling_resolves_to_the_same_operation(self, text: str) -> None:
        service, op = parse_operation_ref(text)
        assert (service, op.name) == ("iot", "CreateThing")

    def test_an_unprefixed_name_is_looked_up_in_the_services_given(self) -> None:
        service, op = parse_operation_ref("list_deployments", ["greengrassv2", "iot"])
        assert (service, op.name) == ("greengrassv2", "ListDeployments")
        service, op = parse_operation_ref("ListDeployments", ["proton"])
        assert (service, op.name) == ("proton", "ListDeployments")

    def test_a_name_two_services_define_needs_its_prefix(self) -> None:
        with pytest.raises(InvalidArgument) as caught:
            parse_operation_ref("ListDeployments", ["greengrassv2", "proton"])
        message = str(caught.value)
        assert "ambiguous" in message
        assert "greengrassv2:ListDeployments" in message and "proton:ListDeployments" in message
        with pytest.raises(InvalidArgument, match="ambiguous"):
            parse_operation_ref("TagResource")  # every seed service has one

    def test_a_prefix_outside_the_services_given_is_refused(self) -> None:
        with pytest.raises(InvalidArgument, match="'proton' is not one of greengrassv2"):
            parse_operation_ref("proton:ListDeployments", ["greengrassv2"])

    def test_unknown_names_come_with_suggestions(self) -> None:
        with pytest.raises(UnknownOperation, match="CreateThing"):
            parse_operation_ref("iot:CreateThingz")
        with pytest.raises(InvalidArgument, match="did you mean CreateThing"):
            parse_operation_ref("CreateThingz")
        with pytest.raises(UnknownService):
            parse_operation_ref("nosuchservice:CreateThing")
