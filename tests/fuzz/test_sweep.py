"""``harness sweep``: every resource of a run goes, by its run tag where the type takes tags and by
its name prefix where it does not; nothing of anyone else goes, whatever its name.

The last test is the real thing: a ``harness fuzz`` process against a ``harness emulator``
process, killed with SIGKILL in the middle of its run, then swept.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from harness.cli import main
from harness.emulator import EmulatorThread
from harness.fuzz._safety import RUN_TAG, WRITE_OPERATIONS
from harness.fuzz._sweep import SWEPT_TYPES, SweptType, tag_source
from harness.model import load_service

RUN = "abc123"
OTHER = "otherrun"
PREFIX = f"harness-{RUN}-"
ACCOUNT_ARN = "arn:aws:iot:us-east-1:123456789012"
IMAGE = {
    "FirmwareUpdateImage": "s3://b/f",
    "FirmwareUpdateRole": "arn:aws:iam::123456789012:role/r",
}


def every_type() -> list[SweptType]:
    return [*SWEPT_TYPES, *(child for kind in SWEPT_TYPES for child in kind.children)]


def clients(url: str) -> dict[str, Any]:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )

    services = ("iot", "greengrassv2", "proton", "iotwireless", "iot-managed-integrations")
    return {service: client(service) for service in services}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def inventory(c: dict[str, Any]) -> dict[str, list[str]]:
    """Every resource of the seed types, by type, in words (sorted)."""
    iot, gg, proton = c["iot"], c["greengrassv2"], c["proton"]
    wireless, ota = c["iotwireless"], c["iot-managed-integrations"]
    found: dict[str, list[str]] = {
        "things": [t["thingName"] for t in iot.list_things()["things"]],
        "groups": [g["groupName"] for g in iot.list_thing_groups()["thingGroups"]],
        "packages": [],
        "deployments": [
            d.get("deploymentName", d["deploymentId"])
            for d in gg.list_deployments(historyFilter="ALL")["deployments"]
        ],
        "templates": [],
        "fuota": [t.get("Name", t["Id"]) for t in wireless.list_fuota_tasks()["FuotaTaskList"]],
        "ota": [t["TaskId"] for t in ota.list_ota_tasks()["Tasks"]],
    }
    for p in iot.list_packages()["packageSummaries"]:
        found["packages"].append(p["packageName"])
        versions = iot.list_package_versions(packageName=p["packageName"])
        found["packages"] += [
            f"{p['packageName']}/{v['versionName']}" for v in versions["packageVersionSummaries"]
        ]
    for t in proton.list_environment_templates()["templates"]:
        found["templates"].append(t["name"])
        versions = proton.list_environment_template_versions(templateName=t["name"])
        found["templates"] += [
            f"{t['name']}:{v['majorVersion']}.{v['minorVersion']}"
            for v in versions["templateVersions"]
        ]
    return {kind: sorted(names) for kind, names in found.items()}


class TestModel:
    def test_every_write_of_a_run_creates_a_swept_type(self) -> None:
        creates = {(s, op) for s, op in WRITE_OPERATIONS if op.startswith("Create")}
        assert creates == {(kind.service, kind.create) for kind in every_type()}

    def test_members_named_are_in_the_models(self) -> None:
        for kind in every_type():
            service = load_service(kind.service)
            listing = service.operation(kind.listing)
            assert listing.paginator is not None and listing.output is not None
            ref = listing.output.members[listing.paginator.result_key[0]].shape.member
            assert ref is not None
            item = ref.shape
            assert set(kind.keys.values()) <= set(item.members), kind.what
            assert kind.name is None or kind.name in item.members, kind.what
            for operation in (*kind.deletes, kind.describe):
                if operation is not None:
                    shape = service.operation(operation).input
                    assert shape is not None and set(kind.keys) <= set(shape.members), operation
            if kind.arn is not None:
                assert kind.describe is not None
                described = service.operation(kind.describe).output
                assert described is not None
                nested = [r.shape.members for r in described.members.values() if r.shape.members]
                assert (
                    kind.arn in item.members
                    or kind.arn in described.members
                    or any(kind.arn in m for m in nested)
                ), kind.what

    def test_what_is_taggable_and_where_tags_are_read(self) -> None:
        sources = {
            kind.what: (s.where, s.member) if (s := tag_source(kind)) is not None else None
            for kind in every_type()
        }
        assert sources == {
            # Things take no tags: the name prefix is all they carry.
            "thing": None,
            # GetDeployment and GetOtaTask answer the tags themselves.
            "deployment": ("describe", "tags"),
            "OTA task": ("describe", "Tags"),
            # The others need ListTagsForResource on the ARN.
            "FUOTA task": ("list-tags", "Tags"),
            "thing group": ("list-tags", "tags"),
            "package": ("list-tags", "tags"),
            "package version": ("list-tags", "tags"),
            "environment template": ("list-tags", "tags"),
            "environment template version": ("list-tags", "tags"),
        }


def test_sweep_deletes_the_runs_resources_and_nothing_else(
    harness_emulator: EmulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    c = clients(harness_emulator.url)
    iot, gg, proton = c["iot"], c["greengrassv2"], c["proton"]
    wireless, ota = c["iotwireless"], c["iot-managed-integrations"]
    ours_list = [{"Key": RUN_TAG, "Value": RUN}]
    ours_map = {RUN_TAG: RUN}
    theirs_list = [{"Key": RUN_TAG, "Value": OTHER}]
    theirs_map = {RUN_TAG: OTHER}
    source = {"s3": {"bucket": "bkt", "key": "k"}}
    # The run's: tagged (a name is no requirement), and things by their prefix.
    iot.create_thing(thingName=f"{PREFIX}thing")
    iot.create_thing_group(thingGroupName=f"{PREFIX}group", tags=ours_list)
    iot.create_thing_group(
        thingGroupName=f"{PREFIX}child", parentGroupName=f"{PREFIX}group", tags=ours_list
    )
    iot.create_thing_group(thingGroupName="renamed-group", tags=ours_list)
    iot.create_package(packageName=f"{PREFIX}pkg", tags=ours_map)
    for version in ("1.0", "2.0"):
        iot.create_package_version(packageName=f"{PREFIX}pkg", versionName=version, tags=ours_map)
    gg.create_deployment(targetArn=f"{ACCOUNT_ARN}:thing/t1", tags=ours_map)
    proton.create_environment_template(name=f"{PREFIX}tpl", tags=[{"key": RUN_TAG, "value": RUN}])
    for _ in range(2):
        proton.create_environment_template_version(
            templateName=f"{PREFIX}tpl", source=source, tags=[{"key": RUN_TAG, "value": RUN}]
        )
    for _ in range(3):
        wireless.create_fuota_task(**IMAGE, Tags=[{"Key": RUN_TAG, "Value": RUN}])  # no Name
    wireless.create_fuota_task(Name=f"{PREFIX}f", **IMAGE, Tags=[{"Key": RUN_TAG, "Value": RUN}])
    ota.create_ota_task(S3Url="s3://b/f", OtaType="ONE_TIME", Tags=ours_map)
    # Not the run's: another run's tag, or no run tag on a taggable type, whatever the name.
    iot.create_thing(thingName="other-thing")
    iot.create_thing_group(thingGroupName=f"{PREFIX}theirs", tags=theirs_list)
    iot.create_thing_group(thingGroupName=f"{PREFIX}untagged")
    iot.create_package(packageName=f"{PREFIX}untagged")
    iot.create_package_version(packageName=f"{PREFIX}untagged", versionName="1.0")
    gg.create_deployment(
        targetArn=f"{ACCOUNT_ARN}:thing/t2", deploymentName=f"{PREFIX}d", tags=theirs_map
    )
    gg.create_deployment(targetArn=f"{ACCOUNT_ARN}:thing/t3", deploymentName=f"{PREFIX}bare")
    proton.create_environment_template(name=f"{PREFIX}untagged")
    wireless.create_fuota_task(Name=f"{PREFIX}theirs", **IMAGE, Tags=theirs_list)
    wireless.create_fuota_task(Name=f"{PREFIX}untagged", **IMAGE)
    kept_ota = ota.create_ota_task(S3Url="s3://b/f", OtaType="ONE_TIME", Tags=theirs_map)["TaskId"]

    code, out, err = run_cli(capsys, "sweep", "--run-id", RUN, "--endpoint", harness_emulator.url)
    assert (code, err) == (0, ""), out
    assert "16 deleted, 0 failed" in out, out
    assert "deleted FUOTA task " in out and "deleted thing group renamed-group" in out
    assert inventory(c) == {
        "things": ["other-thing"],
        "groups": [f"{PREFIX}theirs", f"{PREFIX}untagged"],
        "packages": [f"{PREFIX}untagged", f"{PREFIX}untagged/1.0"],
        "deployments": [f"{PREFIX}bare", f"{PREFIX}d"],
        "templates": [f"{PREFIX}untagged"],
        "fuota": [f"{PREFIX}theirs", f"{PREFIX}untagged"],
        "ota": [kept_ota],
    }
    # Nothing left: a second sweep deletes nothing and succeeds.
    code, out, _ = run_cli(capsys, "sweep", "--run-id", RUN, "--endpoint", harness_emulator.url)
    assert code == 0 and out.strip().endswith("0 deleted, 0 failed")
    assert (
        run_cli(capsys, "sweep", "--run-id", "Bad Id", "--endpoint", harness_emulator.url)[0] == 2
    )


class _RefusingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the emulator, but answers AccessDenied to the requests of ``refuse``, as an
    account whose role may not list or read tags would."""

    upstream = ""
    refuse: tuple[tuple[str, str], ...] = ()

    def forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        if any(self.command == m and path.startswith(p) for m, p in self.refuse):
            payload = b'{"message": "not allowed"}'
            self.send_response(403)
            self.send_header("x-amzn-ErrorType", "AccessDeniedException")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        host, port = self.upstream.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request(self.command, self.path, body, dict(self.headers))
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_proxy(harness_emulator: EmulatorThread) -> Iterator[str]:
    handler = type(
        "Handler",
        (_RefusingProxy,),
        {
            "upstream": harness_emulator.url,
            # IoT's ListTagsForResource, and IoT Wireless's ListFuotaTasks.
            "refuse": (("GET", "/tags"), ("GET", "/fuota-tasks")),
        },
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_what_cannot_be_listed_or_judged_stays_and_fails_the_sweep(
    harness_emulator: EmulatorThread, refusing_proxy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    c = clients(harness_emulator.url)
    c["iot"].create_thing_group(thingGroupName=f"{PREFIX}g", tags=[{"Key": RUN_TAG, "Value": RUN}])
    c["iot"].create_thing(thingName=f"{PREFIX}thing")
    c["iotwireless"].create_fuota_task(**IMAGE, Tags=[{"Key": RUN_TAG, "Value": RUN}])
    code, out, err = run_cli(capsys, "sweep", "--run-id", RUN, "--endpoint", refusing_proxy)
    assert code == 1, out + err
    assert "could not delete thing group harness-abc123-g: could not read its tags" in err, err
    assert "AccessDeniedException" in err
    assert "could not delete FUOTA tasks: could not list them" in err, err
    assert "deleted thing harness-abc123-thing" in out
    assert "1 deleted, 2 failed" in out
    # The group (tags unreadable) and the task (not listable) are still there.
    left = inventory(c)
    assert left["groups"] == [f"{PREFIX}g"] and len(left["fuota"]) == 1 and left["things"] == []


# ------------------------------------------------------------------------------ killed run
@pytest.fixture
def emulator_process() -> Iterator[str]:
    """A ``harness emulator`` process on a free port; its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", "--proton-delay", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield line.removeprefix("listening on ")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def resources(url: str) -> dict[str, dict[str, int]]:
    """The emulator's resources per service and type (every type, not only the swept ones)."""
    with urllib.request.urlopen(url + "/_harness/stats", timeout=30) as resp:
        stats = json.loads(resp.read())
    return {s: {k: n for k, n in types.items() if n} for s, types in stats["resources"].items()}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_killed_fuzz_run_is_swept(emulator_process: str, tmp_path: Path) -> None:
    url = emulator_process
    c = clients(url)
    # The FUOTA property last: the run is killed while its nameless tasks exist, and the
    # properties before it have created resources of every other type (a run deletes what it
    # created when it ends, and a killed run never gets there).
    operations = [
        "iot.CreateThingGroup", "iot.CreatePackageVersion", "proton.CreateEnvironmentTemplate",
        "greengrassv2.CreateDeployment", "iot-managed-integrations.CreateOtaTask",
        "iot.CreateThing", "iotwireless.CreateFuotaTask",
    ]  # fmt: skip
    command = [
        sys.executable, "-m", "harness", "fuzz", "--endpoint", url, "--allow-writes",
        "--stateful", "--run-id", RUN, "--safety", "aws", "--examples", "40",
        *(arg for op in operations for arg in ("--operation", op)),
    ]  # fmt: skip
    log = tmp_path / "fuzz.log"
    with log.open("w") as out:
        fuzz = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        nameless: list[dict[str, Any]] = []
        while time.monotonic() < deadline and fuzz.poll() is None:
            tasks = c["iotwireless"].list_fuota_tasks()["FuotaTaskList"]
            nameless = [t for t in tasks if "Name" not in t]
            if len(nameless) >= 3:
                break
            time.sleep(0.1)
        fuzz.send_signal(signal.SIGKILL)
    finally:
        if fuzz.poll() is None:
            fuzz.kill()
        fuzz.wait(timeout=60)
    assert fuzz.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert len(nameless) >= 3, log.read_text()[-3000:]
    left = resources(url)
    # What the run left behind: nameless FUOTA tasks and resources of every other type.
    assert sum(left["iotwireless"].values()) >= 3
    assert {s for s, types in left.items() if types} >= {
        "iot", "iotwireless", "greengrassv2", "proton", "iot-managed-integrations",
    }, left  # fmt: skip
    for task in nameless:
        tags = c["iotwireless"].list_tags_for_resource(ResourceArn=task["Arn"])["Tags"]
        assert {"Key": RUN_TAG, "Value": RUN} in tags

    # Foreign resources: the run's name prefix, but another run's tag or none at all.
    iot, wireless = c["iot"], c["iotwireless"]
    iot.create_thing_group(
        thingGroupName=f"{PREFIX}foreign", tags=[{"Key": RUN_TAG, "Value": OTHER}]
    )
    iot.create_thing_group(thingGroupName=f"{PREFIX}untagged")
    wireless.create_fuota_task(
        Name=f"{PREFIX}foreign", **IMAGE, Tags=[{"Key": RUN_TAG, "Value": OTHER}]
    )
    wireless.create_fuota_task(**IMAGE, Tags=[{"Key": RUN_TAG, "Value": OTHER}])  # no Name
    wireless.create_fuota_task(Name=f"{PREFIX}untagged", **IMAGE)
    c["iot-managed-integrations"].create_ota_task(
        S3Url="s3://b/f", OtaType="ONE_TIME", Tags={RUN_TAG: OTHER}
    )
    c["proton"].create_environment_template(
        name=f"{PREFIX}foreign", tags=[{"key": RUN_TAG, "value": OTHER}]
    )
    iot.create_thing(thingName="someone-elses-thing")

    done = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "--run-id", RUN, "--endpoint", url],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stdout.count("deleted FUOTA task") >= 3
    # Every resource of the run is gone, of every type the emulator keeps: what is left is
    # exactly the foreign resources.
    names = inventory(c)
    assert resources(url) == {
        "greengrassv2": {},
        "iot": {"Thing": 1, "ThingGroup": 2},
        "iot-managed-integrations": {"OtaTask": 1},
        "iotwireless": {"FuotaTask": 3},
        "proton": {"EnvironmentTemplate": 1},
    }, (names, done.stdout[-2000:])
    assert names["groups"] == [f"{PREFIX}foreign", f"{PREFIX}untagged"]
    assert names["things"] == ["someone-elses-thing"]
    assert len(names["fuota"]) == 3 and f"{PREFIX}untagged" in names["fuota"]
    assert names["templates"] == [f"{PREFIX}foreign"]
