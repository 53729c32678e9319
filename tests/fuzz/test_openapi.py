"""OpenAPI documents from the models: valid 3.1, loadable by Schemathesis, faithful to the model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, find, settings
from openapi_spec_validator import OpenAPIV31SpecValidator

from harness.cli import main
from harness.errors import InvalidArgument
from harness.fuzz import openapi_document
from harness.fuzz._openapi import pseudo_path
from harness.fuzz._openapi_patterns import portable_pattern
from harness.model import SEED_SERVICES, ServiceModel, load_service

#: The operations the fuzz suites concentrate on, per service.
SEED_OPERATIONS: dict[str, tuple[str, ...]] = {
    "iot": (
        "CreateThing",
        "DescribeThing",
        "ListThings",
        "CreateThingGroup",
        "AddThingToThingGroup",
        "ListThingsInThingGroup",
        "CreatePackage",
        "CreatePackageVersion",
        "ListPackageVersions",
    ),
    "greengrassv2": ("CreateDeployment", "GetDeployment", "ListDeployments"),
    "iotwireless": ("CreateFuotaTask", "GetFuotaTask", "ListFuotaTasks"),
    "proton": (
        "CreateEnvironmentTemplate",
        "CreateEnvironmentTemplateVersion",
        "ListEnvironmentTemplateVersions",
    ),
    "iot-managed-integrations": ("CreateOtaTask", "GetOtaTask", "ListOtaTasks"),
}
ONE = settings(
    max_examples=1, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
)

#: What the seed models lack: a union, recursion, a document, blobs, timestamps in each
#: location, a greedy label, an ARN label, a list in the query string, a map with key rules.
SYNTHETIC: dict[str, Any] = {
    "metadata": {"protocol": "rest-json", "apiVersion": "2024-01-01", "serviceId": "Synth"},
    "operations": {
        "PutNode": {
            "http": {"method": "PUT", "requestUri": "/nodes/{key+}", "responseCode": 201},
            "input": {"shape": "PutNodeRequest"},
            "output": {"shape": "PutNodeResponse"},
            "errors": [{"shape": "NotFound"}],
        },
        "GetNode": {
            "http": {"method": "GET", "requestUri": "/tags/{resourceArn}"},
            "input": {"shape": "GetNodeRequest"},
        },
    },
    "shapes": {
        "PutNodeRequest": {
            "type": "structure",
            "required": ["key", "tree"],
            "members": {
                "key": {"shape": "Key", "location": "uri", "locationName": "key"},
                "since": {"shape": "Time", "location": "querystring", "locationName": "since"},
                "tags": {"shape": "Keys", "location": "querystring", "locationName": "tag"},
                "at": {"shape": "Time", "location": "header", "locationName": "x-at"},
                "tree": {"shape": "Node", "locationName": "Tree"},
                "choice": {"shape": "Choice"},
                "doc": {"shape": "Doc"},
                "data": {"shape": "Data"},
                "when": {"shape": "Time"},
                "labels": {"shape": "Labels"},
            },
        },
        "PutNodeResponse": {"type": "structure", "members": {"key": {"shape": "Key"}}},
        "GetNodeRequest": {
            "type": "structure",
            "required": ["resourceArn"],
            "members": {"resourceArn": {"shape": "Key", "location": "uri"}},
        },
        "Node": {
            "type": "structure",
            "members": {"value": {"shape": "Key"}, "children": {"shape": "Nodes"}},
        },
        "Nodes": {"type": "list", "member": {"shape": "Node"}, "max": 3},
        "Choice": {
            "type": "structure",
            "union": True,
            "members": {"a": {"shape": "Key"}, "b": {"shape": "Count"}},
        },
        "Labels": {
            "type": "map",
            "key": {"shape": "LabelKey"},
            "value": {"shape": "Key"},
            "min": 1,
            "max": 5,
        },
        "LabelKey": {"type": "string", "pattern": "[\\p{L}\\p{N}_]+", "max": 8},
        "Key": {"type": "string", "min": 1, "max": 64, "pattern": "[a-z0-9/-]+"},
        "Keys": {"type": "list", "member": {"shape": "Key"}},
        "Count": {"type": "integer", "min": 1, "max": 10},
        "Time": {"type": "timestamp"},
        "Doc": {"type": "structure", "document": True, "members": {}},
        "Data": {"type": "blob", "min": 1, "max": 10},
        "NotFound": {
            "type": "structure",
            "exception": True,
            "error": {"httpStatusCode": 404},
            "members": {"message": {"shape": "Key"}},
        },
    },
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {name: openapi_document(name) for name in SEED_SERVICES}


def _walk(value: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, key)


def _operation(doc: dict[str, Any], name: str) -> tuple[str, str, dict[str, Any]]:
    for path, methods in doc["paths"].items():
        for method, spec in methods.items():
            if spec["operationId"] == name:
                return path, method, spec
    raise AssertionError(f"{name} is not in the document")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


class TestValidity:
    @pytest.mark.parametrize("service", SEED_SERVICES)
    def test_valid_openapi_31(self, documents: dict[str, dict[str, Any]], service: str) -> None:
        doc = documents[service]
        assert doc["openapi"] == "3.1.0"
        errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
        assert not errors, errors[:3]

    @pytest.mark.parametrize("service", SEED_SERVICES)
    def test_schemathesis_loads_every_operation(
        self, documents: dict[str, dict[str, Any]], service: str
    ) -> None:
        schema = schemathesis.openapi.from_dict(documents[service])
        results = list(schema.get_all_operations())
        assert len(results) == len(load_service(service).operations)
        for result in results:
            result.ok()  # raises the loading error, if any

    @pytest.mark.parametrize("service", SEED_SERVICES)
    def test_schemathesis_generates_seed_cases(
        self, documents: dict[str, dict[str, Any]], service: str
    ) -> None:
        schema = schemathesis.openapi.from_dict(documents[service])
        for name in SEED_OPERATIONS[service]:
            path, method, _ = _operation(documents[service], name)
            operation = schema[path][method]
            case = find(operation.as_strategy(), lambda _: True, settings=ONE)
            assert case.operation.label == f"{method.upper()} {path}"

    @pytest.mark.parametrize("service", SEED_SERVICES)
    def test_patterns_are_anchored_and_portable(
        self, documents: dict[str, dict[str, Any]], service: str
    ) -> None:
        patterns = set(_walk(documents[service]["components"], "pattern"))
        patterns |= set(_walk(documents[service]["paths"], "pattern"))
        assert patterns
        for pattern in patterns:
            assert pattern.startswith("^(?:") and pattern.endswith(")$"), pattern
            re.compile(pattern)
            jsonschema_rs.validator_for({"type": "string", "pattern": pattern})

    def test_iot_tag_keys_approximate_unicode_categories(self) -> None:
        found = portable_pattern("[\\p{L}\\p{N} ._-]+")
        assert found.pattern is not None and not found.exact
        assert re.fullmatch(found.pattern, "Été 2024_x")
        assert not re.fullmatch(found.pattern, "tab\there")

    @pytest.mark.parametrize(
        "pattern", ["(?=.{1,256}$)[a-z]+", "(?i)abc", "[a-z&&[^b]]", "\\p{InGreek}+", "a++"]
    )
    def test_unportable_patterns_are_dropped(self, pattern: str) -> None:
        assert portable_pattern(pattern).pattern is None

    def test_java_end_anchor(self) -> None:
        found = portable_pattern("[0-9]+\\z")
        assert found.pattern == "^(?:[0-9]+$)$" and found.exact


class TestFaithfulToTheModel:
    @pytest.mark.parametrize(
        ("service", "name"), [(s, n) for s, names in SEED_OPERATIONS.items() for n in names]
    )
    def test_seed_operation_binding(
        self, documents: dict[str, dict[str, Any]], service: str, name: str
    ) -> None:
        model = load_service(service)
        op = model.operation(name)
        path, method, spec = _operation(documents[service], name)
        if model.protocol == "json":
            assert (path, method) == (pseudo_path(model, name), "post")
            assert spec["requestBody"]["required"] is True
            assert set(spec["requestBody"]["content"]) == {"application/x-amz-json-1.0"}
            return
        assert (path, method) == (op.path_template, op.http_method.lower())
        assert str(op.success_code) in spec["responses"]
        expected = {
            (ref.wire_name, {"uri": "path", "querystring": "query"}.get(ref.location, "header"))
            for ref in op.input.members.values()
            if ref.location is not None
        }
        got = {(p["name"], p["in"]) for p in spec.get("parameters", ())}
        assert got == expected
        for param in spec.get("parameters", ()):
            assert param["required"] is (
                param["in"] == "path" or param["name"] in op.input.required
            )
        for error in op.errors:
            assert error.code in spec["responses"][str(error.status)]["x-aws-errors"]

    def test_list_deployments_max_results(self, documents: dict[str, dict[str, Any]]) -> None:
        _, _, spec = _operation(documents["greengrassv2"], "ListDeployments")
        params = {p["name"]: p for p in spec["parameters"]}
        assert params["maxResults"]["schema"] == {
            "type": "integer",
            "format": "int32",
            "minimum": 1,
            "maximum": 100,
        }
        assert params["historyFilter"]["schema"]["enum"] == ["ALL", "LATEST_ONLY"]

    def test_proton_pseudo_paths(self, documents: dict[str, dict[str, Any]]) -> None:
        model = load_service("proton")
        paths = documents["proton"]["paths"]
        assert set(paths) == {pseudo_path(model, name) for name in model.operations}
        assert "/AwsProton20200720.CreateEnvironmentTemplate" in paths

    def test_create_deployment_links_to_get_deployment(
        self, documents: dict[str, dict[str, Any]]
    ) -> None:
        _, _, spec = _operation(documents["greengrassv2"], "CreateDeployment")
        links = spec["responses"]["201"]["links"]
        assert links["GetDeployment"] == {
            "operationId": "GetDeployment",
            "parameters": {"deploymentId": "$response.body#/deploymentId"},
        }
        # Unrelated operations with an {arn} label are not linked.
        assert "GetComponent" not in links

    def test_create_thing_links_to_describe_thing(
        self, documents: dict[str, dict[str, Any]]
    ) -> None:
        _, _, spec = _operation(documents["iot"], "CreateThing")
        links = spec["responses"]["200"]["links"]
        assert links["DescribeThing"]["parameters"] == {"thingName": "$response.body#/thingName"}

    def test_links_stay_on_the_created_resource(self, documents: dict[str, dict[str, Any]]) -> None:
        _, _, spec = _operation(documents["iotwireless"], "CreateFuotaTask")
        assert spec["responses"]["201"]["links"]["GetFuotaTask"]["parameters"] == {
            "Id": "$response.body#/Id"
        }
        # CreateWirelessGateway's Id would fit GetWirelessGatewayTask's {Id}, but a gateway need
        # not have a task: a 404 there says nothing about the create.
        _, _, spec = _operation(documents["iotwireless"], "CreateWirelessGateway")
        assert "GetWirelessGatewayTask" not in spec["responses"]["201"].get("links", {})
        _, _, spec = _operation(documents["iot"], "CreateThingGroup")
        assert "ListThingsInThingGroup" in spec["responses"]["200"]["links"]

    def test_empty_outputs_have_no_body(self, documents: dict[str, dict[str, Any]]) -> None:
        _, _, spec = _operation(documents["greengrassv2"], "DeleteDeployment")
        assert "content" not in spec["responses"]["204"]
        _, _, spec = _operation(documents["iotwireless"], "AssociateMulticastGroupWithFuotaTask")
        assert "content" not in spec["responses"]["204"]
        _, _, spec = _operation(documents["greengrassv2"], "CancelDeployment")
        assert "application/json" in spec["responses"]["200"]["content"]

    def test_path_patterns_that_need_a_slash_are_dropped(
        self, documents: dict[str, dict[str, Any]]
    ) -> None:
        # Schemathesis never puts "/" in a path parameter: this pattern would filter out every case.
        _, _, spec = _operation(documents["iot-managed-integrations"], "TagResource")
        (arn,) = [p for p in spec["parameters"] if p["in"] == "path"]
        assert "pattern" not in arn["schema"] and "/" in arn["schema"]["x-aws-pattern"]
        assert arn["x-aws-arn"] is True

    def test_requests_closed_responses_open(self, documents: dict[str, dict[str, Any]]) -> None:
        doc = documents["greengrassv2"]
        _, _, spec = _operation(doc, "CreateDeployment")
        request = spec["requestBody"]["content"]["application/json"]["schema"]
        assert request["additionalProperties"] is False
        policies = _resolve(doc, request["properties"]["deploymentPolicies"])
        assert policies["additionalProperties"] is False
        response = spec["responses"]["201"]["content"]["application/json"]["schema"]
        assert "additionalProperties" not in response
        assert "additionalProperties" not in doc["components"]["schemas"]["Deployment.Response"]

    def test_errors_grouped_by_status(self, documents: dict[str, dict[str, Any]]) -> None:
        _, _, spec = _operation(documents["proton"], "CreateEnvironmentTemplateVersion")
        # json protocol: errors without an httpStatusCode are 400s.
        assert set(spec["responses"]["400"]["x-aws-errors"]) >= {
            "ValidationException",
            "ConflictException",
            "ResourceNotFoundException",
        }
        assert spec["responses"]["500"]["x-aws-errors"] == ["InternalServerException"]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The document of the synthetic model."""
    return openapi_document(ServiceModel("synth", SYNTHETIC, {}, "test"))


class TestSyntheticModel:
    def test_valid_and_loadable(self, doc: dict[str, Any]) -> None:
        assert not list(OpenAPIV31SpecValidator(doc).iter_errors())
        schema = schemathesis.openapi.from_dict(doc)
        case = find(schema["/nodes/{key}"]["put"].as_strategy(), lambda _: True, settings=ONE)
        assert case.path_parameters["key"]

    def test_greedy_and_arn_labels_are_noted(self, doc: dict[str, Any]) -> None:
        spec = doc["paths"]["/nodes/{key}"]["put"]
        assert spec["x-aws-greedy-labels"] == ["key"]
        (arn,) = doc["paths"]["/tags/{resourceArn}"]["get"]["parameters"]
        assert arn["x-aws-arn"] is True and "/" in arn["description"]

    def test_locations_and_timestamps(self, doc: dict[str, Any]) -> None:
        params = {p["name"]: p for p in doc["paths"]["/nodes/{key}"]["put"]["parameters"]}
        assert params["since"]["schema"] == {"type": "string", "format": "date-time"}
        assert params["x-at"]["in"] == "header" and "format" not in params["x-at"]["schema"]
        assert params["tag"]["schema"]["type"] == "array" and params["tag"]["explode"] is True
        body = doc["paths"]["/nodes/{key}"]["put"]["requestBody"]["content"]["application/json"]
        props = body["schema"]["properties"]
        assert body["schema"]["required"] == ["Tree"]  # the wire name, not the member name
        assert props["when"]["type"] == "number"  # epoch seconds in JSON bodies
        assert props["data"] == {
            "type": "string",
            "format": "byte",
            "minLength": 4,
            "maxLength": 16,
        }
        assert props["doc"] == {}

    def test_union_recursion_and_maps(self, doc: dict[str, Any]) -> None:
        schemas = doc["components"]["schemas"]
        assert schemas["Choice"]["minProperties"] == schemas["Choice"]["maxProperties"] == 1
        assert schemas["Node"]["properties"]["children"]["items"] == {
            "$ref": "#/components/schemas/Node"
        }
        labels = doc["paths"]["/nodes/{key}"]["put"]["requestBody"]["content"]
        labels = labels["application/json"]["schema"]["properties"]["labels"]
        assert labels["minProperties"] == 1 and labels["maxProperties"] == 5
        assert labels["propertyNames"]["maxLength"] == 8
        assert labels["propertyNames"]["x-aws-pattern"] == "[\\p{L}\\p{N}_]+"

    def test_only_rest_json_and_json(self) -> None:
        model = ServiceModel("q", {"metadata": {"protocol": "query"}, "shapes": {}}, {}, "test")
        with pytest.raises(InvalidArgument, match="query protocol"):
            openapi_document(model)

    def test_operation_subset(self) -> None:
        doc = openapi_document("greengrassv2", operations=["GetDeployment"])
        assert list(doc["paths"]) == ["/greengrass/v2/deployments/{deploymentId}"]


class TestSpecsOpenapiCommand:
    def test_writes_a_loadable_document(self, tmp_path: Path) -> None:
        out = tmp_path / "greengrassv2.json"
        main(["specs", "openapi", "greengrassv2", "--out", str(out)])
        doc = orjson.loads(out.read_bytes())
        assert doc == openapi_document("greengrassv2")
        schema = schemathesis.openapi.from_path(str(out))
        assert len(list(schema.get_all_operations())) == 29

    def test_stdout_and_operation_filter(self, capsys: pytest.CaptureFixture[str]) -> None:
        main(["specs", "openapi", "proton", "--operation", "CreateEnvironmentTemplate"])
        doc = orjson.loads(capsys.readouterr().out)
        assert list(doc["paths"]) == ["/AwsProton20200720.CreateEnvironmentTemplate"]
