"""The emulator's state survives a restart: every service, client tokens, pagination tokens.

Real ``harness emulator --state-dir`` processes stopped with SIGTERM, and the in-process API;
plus the snapshot/restore admin endpoints.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from harness.emulator import EmulatorThread
from harness.emulator._core import EmulatorCore
from harness.emulator._persist import _capture, encode, load_into
from harness.emulator._state import Table

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
IMAGE = "s3://firmware-bucket/images/v2.bin"
ROLE = "arn:aws:iam::123456789012:role/fuota"
SOURCE = {"s3": {"bucket": "templates", "key": "env.zip"}}
COMPONENTS = {"com.example.Agent": {"componentVersion": "1.0.0"}}
# Sent with every state-changing admin call: the admin guard requires it.
ADMIN = {"X-Harness-Admin": "1", "Content-Type": "application/json"}


# ------------------------------------------------------------------------------------ helpers
class Server:
    """A ``harness emulator`` child process on a free port."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = _first_line(self.proc, timeout=120)
        if not line.startswith("listening on http://127.0.0.1:"):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"did not start: {line!r} {err}")
        self.url = line.removeprefix("listening on ")

    def client(self, service: str, region: str = "us-east-1", account: str | None = None) -> Any:
        return boto3.session.Session(
            aws_access_key_id=account or "AKIDEXAMPLE",
            aws_secret_access_key="secret",
            region_name=region,
        ).client(
            service,
            endpoint_url=self.url,
            config=Config(retries={"max_attempts": 0, "mode": "standard"}),
        )

    def admin(self, method: str, action: str, body: Any = None) -> tuple[int, Any]:
        return admin_call(self.url, method, action, body)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> str:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        return err


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""


def admin_call(url: str, method: str, action: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}/_harness/{action}", data=data, method=method, headers=ADMIN
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _plain(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def populate(clients: Any) -> dict[str, Any]:
    """Create resources of every service, with tombstones, indexes and client tokens."""
    iot = clients("iot")
    iot.create_thing_type(thingTypeName="sensor")
    iot.create_billing_group(billingGroupName="lab")
    for i in range(8):
        extra: dict[str, Any] = {"thingTypeName": "sensor"} if i % 2 else {}
        iot.create_thing(
            thingName=f"dev-{i}",
            attributePayload={"attributes": {"serial": f"s{i}", "site": "a" if i < 4 else "b"}},
            **extra,
        )
    iot.delete_thing(thingName="dev-7")  # a tombstone in every index it was in
    iot.update_thing(
        thingName="dev-1", attributePayload={"attributes": {"site": "b"}, "merge": True}
    )
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="fleet-eu", parentGroupName="fleet")
    iot.create_thing_group(thingGroupName="solo")
    for name, group in [(f"dev-{i}", "fleet") for i in range(4)] + [
        (f"dev-{i}", "fleet-eu") for i in range(2, 6)
    ]:
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)
    iot.add_thing_to_thing_group(thingGroupName="solo", thingName="dev-1")
    iot.remove_thing_from_thing_group(thingGroupName="fleet", thingName="dev-3")
    iot.create_package(packageName="fw")
    iot.create_package_version(packageName="fw", versionName="1.0", attributes={"a": "b"})
    iot.update_package_version(packageName="fw", versionName="1.0", action="PUBLISH")
    iot.create_package_version(packageName="fw", versionName="1.1")

    gg = clients("greengrassv2")
    fleet_arn = f"arn:aws:iot:us-east-1:{ACCOUNT}:thinggroup/fleet"
    deployment = {"targetArn": fleet_arn, "components": COMPONENTS, "clientToken": "tok-gg"}
    first = gg.create_deployment(**deployment)
    gg.create_deployment(targetArn=fleet_arn, components=COMPONENTS)  # revision 2
    gg.create_deployment(
        targetArn=f"arn:aws:iot:us-east-1:{ACCOUNT}:thinggroup/fleet-eu",
        parentTargetArn=fleet_arn,
        components=COMPONENTS,
    )

    proton = clients("proton")
    proton.create_environment_template(name="env", displayName="Env")
    version = {"templateName": "env", "source": SOURCE, "clientToken": "tok-proton"}
    made = proton.create_environment_template_version(**version)
    proton.create_environment_template_version(templateName="env", source=SOURCE)

    wireless = clients("iotwireless")
    fuota = {
        "Name": "rollout",
        "FirmwareUpdateImage": IMAGE,
        "FirmwareUpdateRole": ROLE,
        "ClientRequestToken": "tok-fuota",
        "Tags": [{"Key": "run", "Value": "r1"}],
    }
    task = wireless.create_fuota_task(**fuota)
    wireless.create_fuota_task(FirmwareUpdateImage=IMAGE, FirmwareUpdateRole=ROLE)

    mi = clients("iot-managed-integrations")
    ota = {"S3Url": "s3://ota/fw.bin", "OtaType": "ONE_TIME", "ClientToken": "tok-ota"}
    ota_task = mi.create_ota_task(**ota, Tags={"run": "r1"})

    clients("iot", region="eu-west-1").create_thing(thingName="eu-thing")
    clients("iot", account=OTHER_ACCOUNT).create_thing(thingName="other-account-thing")
    return {
        "gg": (deployment, first["deploymentId"]),
        "proton": (version, made["environmentTemplateVersion"]["arn"]),
        "fuota": (fuota, task["Id"]),
        "ota": ({**ota, "Tags": {"run": "r1"}}, ota_task["TaskId"]),
    }


def observe(clients: Any) -> dict[str, Any]:
    """Everything a client can read back about what :func:`populate` made."""
    iot, seen = clients("iot"), {}
    things = iot.list_things()["things"]
    seen["things"] = things
    seen["described"] = [_plain(iot.describe_thing(thingName=t["thingName"])) for t in things]
    seen["by_attr"] = iot.list_things(attributeName="site", attributeValue="b")["things"]
    seen["by_type"] = iot.list_things(thingTypeName="sensor")["things"]
    seen["groups"] = iot.list_thing_groups()["thingGroups"]
    seen["group_detail"] = [
        _plain(iot.describe_thing_group(thingGroupName=g["groupName"])) for g in seen["groups"]
    ]
    seen["members"] = iot.list_things_in_thing_group(thingGroupName="fleet", recursive=True)
    seen["groups_of"] = iot.list_thing_groups_for_thing(thingName="dev-2")["thingGroups"]
    seen["type"] = _plain(iot.describe_thing_type(thingTypeName="sensor"))
    seen["billing"] = _plain(iot.describe_billing_group(billingGroupName="lab"))
    seen["package"] = _plain(iot.get_package(packageName="fw"))
    seen["versions"] = iot.list_package_versions(packageName="fw")["packageVersionSummaries"]
    seen["published"] = iot.list_package_versions(packageName="fw", status="PUBLISHED")
    gg = clients("greengrassv2")
    seen["deployments"] = gg.list_deployments(historyFilter="ALL")["deployments"]
    seen["children"] = gg.list_deployments(
        parentTargetArn=f"arn:aws:iot:us-east-1:{ACCOUNT}:thinggroup/fleet"
    )["deployments"]
    seen["deployment"] = [
        _plain(gg.get_deployment(deploymentId=d["deploymentId"])) for d in seen["deployments"]
    ]
    proton = clients("proton")
    seen["template"] = _plain(proton.get_environment_template(name="env"))
    seen["template_versions"] = proton.list_environment_template_versions(templateName="env")
    wireless = clients("iotwireless")
    seen["fuota"] = [
        _plain(wireless.get_fuota_task(Id=t["Id"]))
        for t in wireless.list_fuota_tasks()["FuotaTaskList"]
    ]
    seen["fuota_tags"] = wireless.list_tags_for_resource(ResourceArn=seen["fuota"][0]["Arn"])[
        "Tags"
    ]
    mi = clients("iot-managed-integrations")
    seen["ota"] = [
        _plain(mi.get_ota_task(Identifier=t["TaskId"])) for t in mi.list_ota_tasks()["Tasks"]
    ]
    seen["eu"] = clients("iot", region="eu-west-1").list_things()["things"]
    seen["other"] = clients("iot", account=OTHER_ACCOUNT).list_things()["things"]
    for key in ("members", "published", "template_versions"):
        seen[key] = _plain(seen[key])
    return seen


def replay(clients: Any, made: dict[str, Any]) -> dict[str, Any]:
    """Repeat each create with its client token; return the ids answered."""
    params, _ = made["gg"]
    proton_params, _ = made["proton"]
    fuota, _ = made["fuota"]
    ota, _ = made["ota"]
    return {
        "gg": clients("greengrassv2").create_deployment(**params)["deploymentId"],
        "proton": clients("proton").create_environment_template_version(**proton_params)[
            "environmentTemplateVersion"
        ]["arn"],
        "fuota": clients("iotwireless").create_fuota_task(**fuota)["Id"],
        "ota": clients("iot-managed-integrations").create_ota_task(**ota)["TaskId"],
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -------------------------------------------------------------------------- real processes
def test_every_service_survives_a_sigterm_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "state" / "nested"  # created, parents included
    server = Server("--state-dir", str(state_dir), "--proton-delay", "0")
    try:
        made = populate(server.client)
        before = observe(server.client)
        iot = server.client("iot")
        first = iot.list_things(maxResults=3)
        token = first["nextToken"]
        second_before = iot.list_things(maxResults=3, nextToken=token)["things"]
        stats_before = server.admin("GET", "stats")[1]
    finally:
        server.stop()
    assert mode(state_dir) == 0o700
    assert mode(state_dir / "emulator.state") == 0o600
    assert mode(state_dir / "emulator.lock") == 0o600
    header = (state_dir / "emulator.state").read_bytes().split(b"\n", 2)[1]
    assert json.loads(header)["resources"]["iot"]["Thing"] == 9  # 7 + eu-west-1 + other account

    server = Server("--state-dir", str(state_dir))
    try:
        # A token issued by the previous process continues the same listing.
        assert server.client("iot").list_things(maxResults=3, nextToken=token)["things"] == (
            second_before
        )
        assert observe(server.client) == before
        # Replayed client tokens answer the same ids and create nothing.
        ids = replay(server.client, made)
        assert ids == {name: made[name][1] for name in ids}
        assert observe(server.client) == before
        stats = server.admin("GET", "stats")[1]
        create_thing = stats["operations"]["iot.CreateThing"]
        assert create_thing["requests"] == stats_before["operations"]["iot.CreateThing"]["requests"]
        assert stats["operations"]["greengrassv2.CreateDeployment"]["replays"] == 1
        assert stats["requests"] > stats_before["requests"]
        assert stats["resources"] == stats_before["resources"]
    finally:
        server.stop(signal.SIGINT)


def test_snapshot_and_restore_reset_to_a_seeded_fleet(tmp_path: Path) -> None:
    server = Server("--state-dir", str(tmp_path))
    try:
        iot = server.client("iot")
        for i in range(5):
            iot.create_thing(thingName=f"seed-{i}")
        status, saved = server.admin("POST", "snapshot", {"name": "seeded"})
        assert status == 200 and saved["resources"] == {"iot": {"Thing": 5}}
        path = tmp_path / "snapshots" / "seeded.snapshot"
        assert mode(path) == 0o600 and mode(path.parent) == 0o700
        token = iot.list_things(maxResults=2)["nextToken"]
        iot.delete_thing(thingName="seed-0")
        iot.create_thing(thingName="test-made")
        status, restored = server.admin("POST", "restore", {"name": "seeded"})
        assert status == 200 and restored["restored"] and restored["name"] == "seeded"
        names = [t["thingName"] for t in iot.list_things()["things"]]
        assert names == [f"seed-{i}" for i in range(5)]
        assert [
            t["thingName"] for t in iot.list_things(maxResults=2, nextToken=token)["things"]
        ] == [
            "seed-2",
            "seed-3",
        ]
        status, listing = server.admin("GET", "snapshots")
        assert status == 200 and [s["name"] for s in listing["snapshots"]] == ["seeded"]
        assert listing["state_dir"] == str(tmp_path)
    finally:
        server.stop()
    # Named snapshots outlive the process that took them.
    server = Server("--state-dir", str(tmp_path))
    try:
        server.client("iot").create_thing(thingName="later")
        assert server.admin("POST", "restore", {"name": "seeded"})[0] == 200
        assert len(server.client("iot").list_things()["things"]) == 5
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "../escape"}, 400, "snapshot name"),
        ({"name": "a/b"}, 400, "snapshot name"),
        ({"name": ".hidden"}, 400, "snapshot name"),
        ({"name": ""}, 400, "snapshot name"),
        ({"name": "x" * 65}, 400, "snapshot name"),
        ({"name": 7}, 400, "snapshot name"),
        ({}, 400, "snapshot name"),
        (["seeded"], 400, "JSON object"),
        ({"name": "never-taken"}, 404, "no snapshot named 'never-taken'"),
    ],
)
def test_restore_refuses_bad_and_unknown_names(
    body: Any, status: int, fragment: str, tmp_path: Path
) -> None:
    with EmulatorThread(state_dir=tmp_path) as emu:
        assert admin_call(emu.url, "POST", "snapshot", {"name": "ok"})[0] == 200
        got_status, answer = admin_call(emu.url, "POST", "restore", body)
        assert got_status == status and fragment in answer["message"], answer
        if status == 400:
            assert admin_call(emu.url, "POST", "snapshot", body)[0] == 400
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["ok.snapshot"]


def test_without_a_state_dir_snapshots_live_in_memory() -> None:
    with EmulatorThread() as emu:
        iot = boto3.client(
            "iot",
            endpoint_url=emu.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="x",
        )
        iot.create_thing(thingName="kept")
        status, saved = admin_call(emu.url, "POST", "snapshot", {"name": "base"})
        assert status == 200 and saved["where"] == "memory"
        iot.create_thing(thingName="dropped")
        assert admin_call(emu.url, "POST", "restore", {"name": "base"})[0] == 200
        assert [t["thingName"] for t in iot.list_things()["things"]] == ["kept"]
        listing = admin_call(emu.url, "GET", "snapshots")[1]
        assert listing["state_dir"] is None and listing["snapshots"][0]["name"] == "base"
    with EmulatorThread() as emu:
        assert admin_call(emu.url, "POST", "restore", {"name": "base"})[0] == 404


# ------------------------------------------------------------------------------ in-process
@pytest.fixture
def seeded_thread(tmp_path: Path) -> Iterator[EmulatorThread]:
    with EmulatorThread(state_dir=tmp_path, snapshot_interval=0) as emu:

        def clients(service: str, region: str = "us-east-1", account: str | None = None) -> Any:
            return boto3.session.Session(
                aws_access_key_id=account or "AKIDEXAMPLE",
                aws_secret_access_key="x",
                region_name=region,
            ).client(service, endpoint_url=emu.url)

        populate(clients)
        yield emu


def test_a_loaded_state_is_the_saved_one_object_for_object(seeded_thread: EmulatorThread) -> None:
    """Every attribute of every state object, not only what the API shows, comes back."""
    core = seeded_thread.core
    header, payload = seeded_thread.call(lambda: encode(core))
    fresh = EmulatorCore()
    load_into(fresh, header + payload, "test", settings=True)
    assert seeded_thread.call(lambda: len(core._states)) == len(fresh._states) >= 7
    for key, state in core._states.items():
        _same(state, fresh._states[key], f"{key}", {})
    # Saving the loaded state gives the same plain data.
    assert _capture(fresh)["states"] == seeded_thread.call(lambda: _capture(core))["states"]


def _same(a: Any, b: Any, path: str, seen: dict[int, int]) -> None:
    """``a`` and ``b`` are equal object graphs: same types, same attributes, same sharing."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, str | int | float | bytes | bool | type(None)):
        assert a == b, f"{path}: {a!r} != {b!r}"
        return
    if id(a) in seen:
        assert seen[id(a)] == id(b), f"{path}: shared differently"
        return
    seen[id(a)] = id(b)
    if isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            _same(a[key], b[key], f"{path}[{key!r}]", seen)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path}: length"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]", seen)
    elif isinstance(a, Table):
        assert a.layout() == b.layout(), f"{path}: layout"
        live = [key for key in a.layout() if key is not None]
        for key, x, y in zip(live, a.values(), b.values(), strict=False):
            _same(x, y, f"{path}[{key!r}]", seen)
        assert len(a) == len(b), f"{path}: rows"
    else:
        names = set(getattr(a, "__dict__", {}))
        for klass in type(a).__mro__:
            names.update(getattr(klass, "__slots__", ()))
        assert names, f"{path}: {type(a).__name__} has no attributes to compare"
        for name in sorted(names):
            _same(getattr(a, name), getattr(b, name), f"{path}.{name}", seen)


def test_the_in_process_emulator_saves_at_stop_and_loads_at_start(tmp_path: Path) -> None:
    with EmulatorThread(state_dir=tmp_path, snapshot_interval=0) as emu:
        boto3.client(
            "iot",
            endpoint_url=emu.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="x",
        ).create_thing(thingName="persisted")
        assert not (tmp_path / "emulator.state").exists()  # no periodic saves
    assert (tmp_path / "emulator.state").exists()
    with EmulatorThread(state_dir=tmp_path) as emu:
        assert emu.call(lambda: emu.core.state(ACCOUNT, "us-east-1", "iot").things.get("persisted"))
        assert emu.emulator.store.loaded is not None


def test_in_flight_client_tokens_are_not_saved_and_expired_ones_not_loaded() -> None:
    core = EmulatorCore()
    done = core.idempotency.begin((ACCOUNT, "us-east-1", "op", "done"), b"d" * 16, 0.0)
    done.response = (200, {}, b"{}")
    done.created = __import__("time").monotonic()
    core.idempotency.begin((ACCOUNT, "us-east-1", "op", "flying"), b"f" * 16, done.created)
    stale = core.idempotency.begin((ACCOUNT, "us-east-1", "op", "stale"), b"s" * 16, 0.0)
    stale.response = (200, {}, b"{}")
    stale.created = done.created - core.settings.idempotency_ttl - 10
    header, payload = encode(core)
    fresh = EmulatorCore()
    load_into(fresh, header + payload, "test", settings=True)
    assert [key[3] for key, _ in fresh.idempotency.items()] == ["done"]
