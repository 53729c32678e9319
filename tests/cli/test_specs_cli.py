"""`harness specs ...` end to end through the real entry point."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from harness.cli import main
from harness.model._specs import read_model_files


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


class TestSpecsList:
    def test_table(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(capsys, "specs", "list")
        assert code == 0
        assert "proton" in out and "json" in out and "iotmanagedintegrations" in out

    def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        _, out, _ = run(capsys, "specs", "list", "--json")
        rows = {r["service"]: r for r in orjson.loads(out)}
        assert rows["greengrassv2"]["operations"] == 29
        assert rows["iotwireless"]["derived_paginators"] >= 1


class TestSpecsShowAndValidate:
    def test_show(self, capsys: pytest.CaptureFixture[str]) -> None:
        _, out, _ = run(capsys, "specs", "show", "iotwireless", "list_fuota_tasks")
        info = orjson.loads(out)
        assert info["operation"] == "ListFuotaTasks"
        assert info["paginator"]["derived"] is True
        assert info["members"]["MaxResults"]["wire_name"] == "maxResults"

    def test_validate_rejects_with_path(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(
            capsys, "specs", "validate", "greengrassv2", "ListDeployments", '{"maxResults": 500}'
        )
        assert code == 1
        assert "[max] maxResults: value 500 is above the maximum 100" in out

    def test_validate_accepts(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(
            capsys, "specs", "validate", "iot", "CreateThing", '{"thingName": "t-1"}'
        )
        assert (code, out.strip()) == (0, "iot.CreateThing: valid")

    def test_bad_json_is_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys, "specs", "validate", "iot", "CreateThing", "{nope")
        assert code == 2 and "not valid JSON" in err

    def test_unknown_operation(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys, "specs", "show", "iot", "create_thingg")
        assert code == 2 and "did you mean create_thing" in err


class TestSpecsDiff:
    def test_files(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        model, _, _ = read_model_files("greengrassv2")
        old = copy.deepcopy(model)
        del old["shapes"]["CreateDeploymentRequest"]["members"]["parentTargetArn"]
        (tmp_path / "old.json").write_bytes(orjson.dumps(old))
        (tmp_path / "new.json").write_bytes(orjson.dumps(model))
        code, out, _ = run(
            capsys,
            "specs",
            "diff",
            str(tmp_path / "old.json"),
            str(tmp_path / "new.json"),
            "--json",
            "--exit-code",
        )
        assert code == 1
        changes = orjson.loads(out)["changes"]
        assert [(c["operation"], c["path"]) for c in changes] == [
            ("CreateDeployment", "parentTargetArn")
        ]

    def test_pinned_vs_installed(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(capsys, "specs", "diff", "pinned:proton", "botocore:proton")
        assert code == 0 and out.startswith("proton:")

    def test_usage(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = run(capsys, "specs", "diff", "only-one")
        assert code == 2 and "give OLD and NEW" in err


class TestSpecsSync:
    def test_sync_into_a_copy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("HARNESS_SPECS_DIR", str(tmp_path))
        code, out, _ = run(capsys, "specs", "sync", "--service", "greengrassv2")
        assert code == 0 and "greengrassv2 2020-11-30: updated" in out
        provenance = orjson.loads((tmp_path / "PROVENANCE.json").read_bytes())
        assert provenance["botocore_version"]
        assert (
            "greengrassv2/2020-11-30/service-2.json"
            in provenance["services"]["greengrassv2"]["files"]
        )
        code, out, _ = run(capsys, "specs", "sync", "--service", "greengrassv2")
        assert "unchanged" in out

    def test_pinned_specs_match_installed_botocore(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, "specs", "sync", "--check")
        assert code == 0, out


def test_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, check=True
    )
    assert "specs" in done.stdout
