"""`diff_models`: the seed-003 changelog, and each kind of change."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.model import diff_models, load_service
from harness.model._specs import read_model_files


def write_model(tmp_path: Path, model: dict[str, Any], name: str = "service-2.json") -> str:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(model))
    return str(path)


@pytest.fixture
def gg_raw() -> dict[str, Any]:
    model, _, _ = read_model_files("greengrassv2")
    return copy.deepcopy(model)


def without_parent_target_arn(model: dict[str, Any]) -> dict[str, Any]:
    """The greengrassv2 model as it was before the 2022-11-15 subdeployments release."""
    shapes = model["shapes"]
    for shape in (
        "CreateDeploymentRequest",
        "GetDeploymentResponse",
        "ListDeploymentsRequest",
        "Deployment",
    ):
        del shapes[shape]["members"]["parentTargetArn"]
    return model


class TestSeed003Changelog:
    """Seed 003: parentTargetArn added to CreateDeployment, GetDeployment and ListDeployments."""

    def test_exactly_the_changelog(self, tmp_path: Path, gg_raw: dict[str, Any]) -> None:
        old = load_service("greengrassv2", write_model(tmp_path, without_parent_target_arn(gg_raw)))
        result = diff_models(old, load_service("greengrassv2"))
        got = {(c.kind, c.operation, c.direction, c.path) for c in result.changes}
        assert got == {
            ("member-added", "CreateDeployment", "request", "parentTargetArn"),
            ("member-added", "ListDeployments", "request", "parentTargetArn"),
            ("member-added", "GetDeployment", "response", "parentTargetArn"),
            ("member-added", "ListDeployments", "response", "deployments[].parentTargetArn"),
        }
        assert len(result.changes) == 4

    def test_text_and_json(self, tmp_path: Path, gg_raw: dict[str, Any]) -> None:
        old = load_service("greengrassv2", write_model(tmp_path, without_parent_target_arn(gg_raw)))
        result = diff_models(old, load_service("greengrassv2"))
        text = result.to_text()
        expected = "ListDeployments\n  request + parentTargetArn\n  response + deployments[]."
        assert expected + "parentTargetArn" in text
        data = result.to_json()
        assert data["service"] == "greengrassv2"
        assert {c["path"] for c in data["changes"]} == {
            "parentTargetArn",
            "deployments[].parentTargetArn",
        }

    def test_same_model_no_changes(self) -> None:
        same = diff_models(load_service("greengrassv2"), load_service("greengrassv2"))
        assert not same
        assert "no changes" in same.to_text()


class TestChangeKinds:
    def diff(
        self, tmp_path: Path, old: dict[str, Any], new: dict[str, Any]
    ) -> set[tuple[Any, ...]]:
        a = load_service("greengrassv2", write_model(tmp_path, old, "old.json"))
        b = load_service("greengrassv2", write_model(tmp_path, new, "new.json"))
        return {
            (c.kind, c.operation, c.direction, c.path, str(c.old), str(c.new))
            for c in diff_models(a, b).changes
        }

    def test_constraint_enum_required_error_operation(
        self, tmp_path: Path, gg_raw: dict[str, Any]
    ) -> None:
        new = copy.deepcopy(gg_raw)
        s = new["shapes"]
        s["DefaultMaxResults"]["max"] = 200
        s["DeploymentHistoryFilter"]["enum"].append("OLDEST_ONLY")
        s["ListDeploymentsRequest"]["required"] = ["targetArn"]
        new["operations"]["GetDeployment"]["errors"].append({"shape": "ConflictException"})
        del new["operations"]["CancelDeployment"]
        got = self.diff(tmp_path, gg_raw, new)
        assert (
            "constraint-changed",
            "ListDeployments",
            "request",
            "maxResults:max",
            "100",
            "200",
        ) in got
        assert (
            "enum-added",
            "ListDeployments",
            "request",
            "historyFilter",
            "None",
            "['OLDEST_ONLY']",
        ) in got
        assert ("required-added", "ListDeployments", "request", "targetArn", "None", "None") in got
        assert ("error-added", "GetDeployment", None, "ConflictException", "None", "409") in got
        assert ("operation-removed", "CancelDeployment", None, "", "None", "None") in got

    def test_type_and_binding_changes(self, tmp_path: Path, gg_raw: dict[str, Any]) -> None:
        new = copy.deepcopy(gg_raw)
        new["shapes"]["ListDeploymentsRequest"]["members"]["maxResults"]["locationName"] = "limit"
        new["shapes"]["ListDeploymentsRequest"]["members"]["historyFilter"]["shape"] = (
            "DefaultMaxResults"
        )
        got = self.diff(tmp_path, gg_raw, new)
        kinds = {(k, p) for k, op, _, p, _, _ in got if op == "ListDeployments"}
        assert ("binding-changed", "maxResults") in kinds
        assert ("type-changed", "historyFilter") in kinds

    def test_recursive_shapes_terminate(self) -> None:
        iot = load_service("iot")
        assert not diff_models(iot, iot)
