"""Loading models, finding operations, and what each operation exposes."""

from __future__ import annotations

import pytest

from harness.errors import RequestValidationError, UnknownOperation, UnknownService
from harness.model import SEED_SERVICES, load_service, pinned_services


class TestLoading:
    def test_all_seed_services_are_pinned(self) -> None:
        assert set(SEED_SERVICES) <= set(pinned_services())

    @pytest.mark.parametrize(
        ("service", "protocol", "signing", "ops"),
        [
            ("iot", "rest-json", "iot", 272),
            ("greengrassv2", "rest-json", "greengrass", 29),
            ("iotwireless", "rest-json", "iotwireless", 112),
            ("proton", "json", "proton", 87),
            ("iot-managed-integrations", "rest-json", "iotmanagedintegrations", 83),
        ],
    )
    def test_metadata(self, service: str, protocol: str, signing: str, ops: int) -> None:
        model = load_service(service)
        assert model.protocol == protocol
        assert model.signing_name == signing
        assert len(model.operations) == ops

    def test_proton_is_json_1_0_with_target_prefix(self) -> None:
        proton = load_service("proton")
        assert proton.json_version == "1.0"
        assert proton.target_prefix == "AwsProton20200720"

    def test_unknown_service(self) -> None:
        with pytest.raises(UnknownService, match="greengrassv2"):
            load_service("nope")

    def test_installed_botocore_model_loads_too(self) -> None:
        assert len(load_service("greengrassv2", "botocore").operations) >= 29

    def test_cached(self) -> None:
        assert load_service("iot") is load_service("iot")


class TestOperationLookup:
    def test_by_api_and_python_name(self) -> None:
        gg = load_service("greengrassv2")
        assert gg.operation("CreateDeployment") is gg.operation("create_deployment")

    def test_unknown_operation_suggests(self) -> None:
        with pytest.raises(UnknownOperation) as info:
            load_service("iot").operation("create_thingg")
        assert "create_thing" in info.value.suggestions


class TestOperationFacts:
    def test_http_binding_and_success_code(self) -> None:
        op = load_service("greengrassv2").operation("CreateDeployment")
        assert (op.http_method, op.request_uri, op.success_code) == (
            "POST",
            "/greengrass/v2/deployments",
            201,
        )
        fuota = load_service("iotwireless").operation("CreateFuotaTask")
        assert fuota.success_code == 201

    def test_idempotency_members(self) -> None:
        assert load_service("greengrassv2").operation("CreateDeployment").idempotency_members == (
            "clientToken",
        )
        assert load_service("iot").operation("CreatePackageVersion").idempotency_members == (
            "clientToken",
        )
        assert load_service("iotwireless").operation("CreateFuotaTask").idempotency_members == (
            "ClientRequestToken",
        )
        assert load_service("iot").operation("CreateThing").idempotency_members == ()

    def test_token_location_is_query_for_iot_packages(self) -> None:
        op = load_service("iot").operation("CreatePackageVersion")
        assert op.input is not None
        token = op.input.members["clientToken"]
        assert (token.location, token.wire_name) == ("querystring", "clientToken")

    def test_errors_with_status(self) -> None:
        iot = load_service("iot").operation("CreateThing")
        assert iot.error("ThrottlingException").status == 400  # type: ignore[union-attr]
        assert iot.error("ResourceAlreadyExistsException").status == 409  # type: ignore[union-attr]
        gg = load_service("greengrassv2").operation("CreateDeployment")
        throttle = gg.error("ThrottlingException")
        assert throttle is not None and throttle.status == 429 and throttle.throttling
        proton = load_service("proton").operation("CreateEnvironmentTemplateVersion")
        assert proton.error("ThrottlingException").throttling  # type: ignore[union-attr]
        assert proton.error("InternalServerException").status == 500  # type: ignore[union-attr]
        assert proton.error("ConflictException").status == 400  # type: ignore[union-attr]

    def test_botocore_paginator(self) -> None:
        page = load_service("greengrassv2").operation("ListDeployments").paginator
        assert page is not None and not page.derived
        assert (page.input_token, page.limit_key, page.result_key) == (
            ("nextToken",),
            "maxResults",
            ("deployments",),
        )
        ota = load_service("iot-managed-integrations").operation("ListOtaTasks").paginator
        assert ota is not None and ota.result_key == ("Tasks",)

    def test_derived_paginator_where_botocore_has_none(self) -> None:
        page = load_service("iotwireless").operation("ListFuotaTasks").paginator
        assert page is not None and page.derived
        assert (page.input_token, page.output_token, page.limit_key, page.result_key) == (
            ("NextToken",),
            ("NextToken",),
            "MaxResults",
            ("FuotaTaskList",),
        )

    def test_no_paginator_for_non_list(self) -> None:
        assert load_service("iot").operation("CreateThing").paginator is None

    def test_quota_published_and_guessed(self) -> None:
        create = load_service("iot").operation("CreateThing").quota
        assert (create.tps, create.guess, create.quota_code) == (100.0, False, "L-64CBACAC")
        fuota = load_service("iotwireless").operation("CreateFuotaTask").quota
        assert fuota.tps == 10.0 and not fuota.guess
        gg = load_service("greengrassv2").operation("CreateDeployment").quota
        assert gg.guess and "guess" in gg.source

    def test_check_raises_with_every_issue(self) -> None:
        op = load_service("greengrassv2").operation("ListDeployments")
        with pytest.raises(RequestValidationError) as info:
            op.check({"maxResults": 500, "historyFilter": "SOME"})
        assert {i.constraint for i in info.value.issues} == {"max", "enum"}
        assert "greengrassv2.ListDeployments" in str(info.value)


class TestShapes:
    def test_recursive_shapes_link(self) -> None:
        # Shapes link directly; walking any model fully must terminate via names.
        for service in SEED_SERVICES:
            model = load_service(service)
            for shape in model.shapes.values():
                for ref in shape.members.values():
                    assert ref.shape is model.shape(ref.shape.name)

    def test_documents_and_unions(self) -> None:
        mi = load_service("iot-managed-integrations")
        assert any(s.type == "document" for s in mi.shapes.values())
        proton = load_service("proton")
        assert proton.shape("TemplateVersionSourceInput").union
