"""The AWS CLI (``--endpoint-url``) works against the emulator for the seed operations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.emulator import EmulatorThread

AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
pytestmark = pytest.mark.skipif(
    AWS is None, reason="the AWS CLI (awscli, a test extra) is not installed"
)


def aws(emu: EmulatorThread, tmp: Path, *args: str) -> tuple[int, Any, str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
    }
    assert AWS is not None
    done = subprocess.run(
        [AWS, "--endpoint-url", emu.url, "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def test_fleet_onboarding(harness_emulator: EmulatorThread, tmp_path: Path) -> None:
    assert (
        aws(harness_emulator, tmp_path, "iot", "create-thing-group", "--thing-group-name", "fleet")[
            0
        ]
        == 0
    )
    code, thing, _ = aws(harness_emulator, tmp_path, "iot", "create-thing", "--thing-name", "dev-1")
    assert code == 0 and thing["thingName"] == "dev-1"
    code, _, err = aws(
        harness_emulator,
        tmp_path,
        "iot",
        "add-thing-to-thing-group",
        "--thing-group-name",
        "fleet",
        "--thing-name",
        "dev-1",
    )
    assert code == 0, err
    code, listed, _ = aws(
        harness_emulator,
        tmp_path,
        "iot",
        "list-things-in-thing-group",
        "--thing-group-name",
        "fleet",
    )
    assert listed["things"] == ["dev-1"]
    code, listed, _ = aws(harness_emulator, tmp_path, "iot", "list-things")
    assert [t["thingName"] for t in listed["things"]] == ["dev-1"]
    code, _, err = aws(
        harness_emulator, tmp_path, "iot", "create-thing", "--thing-name", "bad name"
    )
    assert code != 0 and "InvalidRequestException" in err


def test_package_versions(harness_emulator: EmulatorThread, tmp_path: Path) -> None:
    assert aws(harness_emulator, tmp_path, "iot", "create-package", "--package-name", "fw")[0] == 0
    code, made, err = aws(
        harness_emulator,
        tmp_path,
        "iot",
        "create-package-version",
        "--package-name",
        "fw",
        "--version-name",
        "1.0.0",
        "--attributes",
        "channel=beta",
    )
    assert code == 0, err
    assert made["status"] == "DRAFT"


def test_greengrass_deployments(harness_emulator: EmulatorThread, tmp_path: Path) -> None:
    target = "arn:aws:iot:us-east-1:123456789012:thinggroup/fleet"
    code, made, err = aws(
        harness_emulator,
        tmp_path,
        "greengrassv2",
        "create-deployment",
        "--target-arn",
        target,
        "--components",
        '{"com.example.app": {"componentVersion": "1.0.0"}}',
    )
    assert code == 0, err
    code, got, _ = aws(
        harness_emulator,
        tmp_path,
        "greengrassv2",
        "get-deployment",
        "--deployment-id",
        made["deploymentId"],
    )
    assert got["targetArn"] == target
    code, listed, _ = aws(
        harness_emulator, tmp_path, "greengrassv2", "list-deployments", "--target-arn", target
    )
    assert [d["deploymentId"] for d in listed["deployments"]] == [made["deploymentId"]]


def test_fuota_ota_and_proton(harness_emulator: EmulatorThread, tmp_path: Path) -> None:
    code, fuota, err = aws(
        harness_emulator,
        tmp_path,
        "iotwireless",
        "create-fuota-task",
        "--firmware-update-image",
        "s3://bucket/fw.bin",
        "--firmware-update-role",
        "arn:aws:iam::123456789012:role/fuota",
    )
    assert code == 0, err and fuota["Id"]
    code, _ota, err = aws(
        harness_emulator,
        tmp_path,
        "iot-managed-integrations",
        "create-ota-task",
        "--s3-url",
        "s3://bucket/ota.bin",
        "--ota-type",
        "ONE_TIME",
    )
    assert code == 0, err
    assert (
        aws(harness_emulator, tmp_path, "proton", "create-environment-template", "--name", "env")[0]
        == 0
    )
    code, version, err = aws(
        harness_emulator,
        tmp_path,
        "proton",
        "create-environment-template-version",
        "--template-name",
        "env",
        "--source",
        '{"s3": {"bucket": "my-bucket", "key": "bundle.zip"}}',
    )
    assert code == 0, err
    assert version["environmentTemplateVersion"]["majorVersion"] == "1"
