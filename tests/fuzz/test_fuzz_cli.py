"""``harness fuzz`` and ``harness sweep`` end to end, against the in-process emulator.

The safety rules for AWS are rehearsed against the emulator with the hidden ``--safety aws``
option: the emulator's state shows what was created, and what is left afterwards.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.cli import main
from harness.emulator import EmulatorSettings, EmulatorThread
from harness.fuzz import FuzzSession, OperationFuzzer, Violation
from harness.fuzz._safety import RUN_TAG
from harness.model import Validator

RUN = "abc123"
PREFIX = f"harness-{RUN}-"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def fuzz(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    return run(capsys, "fuzz", "--endpoint", url, "--examples", "5", *args)


def iot_state(emu: EmulatorThread) -> Any:
    return emu.call(lambda: emu.core.state("123456789012", "us-east-1", "iot"))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any], int]]:
    """Every call the fuzzers send: (operation, params, status)."""
    seen: list[tuple[str, dict[str, Any], int]] = []
    original = FuzzSession.call

    def spy(self: FuzzSession, service: str, operation: str, params: dict[str, Any]) -> Any:
        reply = original(self, service, operation, params)
        seen.append((operation, params, reply.status if reply is not None else -1))
        return reply

    monkeypatch.setattr(FuzzSession, "call", spy)
    return seen


@pytest.fixture(scope="module")
def _emulator() -> Iterator[EmulatorThread]:
    # Without the shared fixture's response checks: a broken emulator's answers must reach the
    # client as they are.
    with EmulatorThread(settings=EmulatorSettings(seed=1)) as emu:
        yield emu


@pytest.fixture
def emulator(_emulator: EmulatorThread) -> EmulatorThread:
    _emulator.call(_emulator.core.reset)
    return _emulator


@pytest.fixture
def no_max_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator stops checking the maximum lengths of CreateThing's members."""
    original = Validator.validate

    def without_max(self: Validator, operation: Any, params: Any) -> Any:
        issues = original(self, operation, params)
        return [i for i in issues if i.constraint != "max" or operation.name != "CreateThing"]

    monkeypatch.setattr(Validator, "validate", without_max)


class TestFuzz:
    def test_a_clean_run(
        self, harness_emulator: EmulatorThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        code, out, _ = fuzz(
            capsys, harness_emulator.url, "--operation", "iot.CreateThing", "--operation", "ListThings",
            "--operation", "iot.create_package", "--stateful", "--seed", "3",
            "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
            "--html", str(tmp_path / "r.html"),
        )  # fmt: skip
        assert code == 0, out
        assert "violations: 0 (0 new)" in out and "p99 ms" in out
        report = orjson.loads((tmp_path / "r.json").read_bytes())
        assert report["seed"] == 3 and report["violations"] == []
        assert report["checks"]["read-after-create"]["passed"] > 0
        assert report["checks"]["idempotent-replay"]["passed"] > 0
        latency = {o["operation"]: o["latency"] for o in report["operations"]}
        assert latency["iot.CreateThing"]["p50_ms"] > 0
        suite = ET.parse(tmp_path / "r.xml").getroot()
        names = {(c.get("classname"), c.get("name")) for c in suite.iter("testcase")}
        assert ("iot.CreateThing", "invalid-rejected") in names
        assert suite.get("failures") == "0"
        html = (tmp_path / "r.html").read_text()
        assert (
            "Contract checks" in html and "read-after-create" in html and "iot.CreateThing" in html
        )

    def test_new_violations_fail_and_a_baseline_accepts_them(
        self,
        emulator: EmulatorThread,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        no_max_checks: None,
    ) -> None:
        args = ("--operation", "iot.CreateThing", "--no-negative", "--examples", "5")
        emulator.call(lambda: emulator.core.configure({"fault_rate": 1.0}))
        code, out, _ = fuzz(capsys, emulator.url, *args, "--junit", str(tmp_path / "j.xml"))
        assert code == 1
        assert (
            "[no-5xx] iot.CreateThing: answered 500" in out
            and "client.create_thing(**params)" in out
        )
        assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "2"
        baseline = tmp_path / "baseline.json"
        code, _, _ = fuzz(
            capsys, emulator.url, *args, "--baseline", str(baseline), "--update-baseline"
        )
        assert code == 0
        assert {e["check"] for e in orjson.loads(baseline.read_bytes())} == {
            "no-5xx",
            "valid-accepted",
        }
        code, out, _ = fuzz(capsys, emulator.url, *args, "--baseline", str(baseline))
        assert code == 0 and "(0 new)" in out
        # A violation the baseline does not list fails the run again.
        emulator.call(lambda: emulator.core.configure({"fault_rate": 0.0}))
        code, out, _ = fuzz(
            capsys, emulator.url, "--operation", "iot.CreateThing", "--examples", "100",
            "--baseline", str(baseline),
        )  # fmt: skip
        assert (
            code == 1
            and "[invalid-rejected] iot.CreateThing: accepted a request breaking max" in out
        )

    def test_usage_errors(
        self, harness_emulator: EmulatorThread, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = harness_emulator.url
        assert fuzz(capsys, url, "--update-baseline")[0] == 2
        assert fuzz(capsys, url, "--operation", "NoSuchOperation")[0] == 2
        code, _, err = fuzz(capsys, url, "--operation", "ListTagsForResource")
        assert code == 2 and "ambiguous" in err
        assert fuzz(capsys, url, "--safety", "aws", "--schemathesis")[0] == 2


class TestSchemathesis:
    def test_its_violations_join_the_report(
        self,
        harness_emulator: EmulatorThread,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        import harness.fuzz._schemathesis as layer

        seen: list[tuple[Any, ...]] = []

        def fake(service: str, url: str, **kwargs: Any) -> list[Violation]:
            seen.append((service, url, kwargs["operations"], kwargs["examples"]))
            return [Violation("not_a_server_error", f"{service}.ListThings", "answered 500")]

        monkeypatch.setattr(layer, "run_schemathesis", fake)
        code, out, _ = fuzz(
            capsys, harness_emulator.url, "--operation", "iot.ListThings", "--schemathesis"
        )
        assert code == 1 and "[not_a_server_error] iot.ListThings" in out
        assert seen == [("iot", harness_emulator.url, ["ListThings"], 5)]

    def test_without_the_layer_the_option_is_refused(
        self,
        harness_emulator: EmulatorThread,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setitem(sys.modules, "harness.fuzz._schemathesis", None)
        code, _, err = fuzz(
            capsys, harness_emulator.url, "--operation", "iot.ListThings", "--schemathesis"
        )
        assert code == 2 and "Schemathesis layer" in err


class TestSafety:
    def test_without_allow_writes_nothing_is_created(
        self, harness_emulator: EmulatorThread, capsys: pytest.CaptureFixture[str], calls: list[Any]
    ) -> None:
        code, out, _ = fuzz(
            capsys, harness_emulator.url, "--safety", "aws", "--run-id", RUN, "--examples", "80",
            "--operation", "iot.CreateThingGroup", "--operation", "iot.ListThings", "--stateful",
        )  # fmt: skip
        assert code == 0, out
        assert "iot.CreateThingGroup: valid requests not sent" in out
        assert "ThingsMachine: not run" in out
        writes = [(op, status) for op, _, status in calls if op != "ListThings" and status != -1]
        assert writes, "invalid CreateThingGroup requests that must be refused are still sent"
        assert all(400 <= status < 500 for _, status in writes), writes
        assert len(iot_state(harness_emulator).groups) == 0

    def test_writes_are_marked_and_deleted(
        self, harness_emulator: EmulatorThread, capsys: pytest.CaptureFixture[str], calls: list[Any]
    ) -> None:
        code, out, _ = fuzz(
            capsys, harness_emulator.url, "--safety", "aws", "--run-id", RUN, "--allow-writes",
            "--operation", "iot.CreateThingGroup", "--operation", "iot.CreateThing", "--stateful",
        )  # fmt: skip
        assert code == 0, out
        created = [(op, p) for op, p, status in calls if op.startswith("Create") and status == 200]
        assert {op for op, _ in created} >= {"CreateThing", "CreateThingGroup", "CreatePackage"}
        for operation, params in created:
            key = {"CreateThing": "thingName", "CreateThingGroup": "thingGroupName"}.get(
                operation, "packageName"
            )
            assert params[key].startswith(PREFIX), (operation, params)
            if operation == "CreateThingGroup":
                assert {"Key": RUN_TAG, "Value": RUN} in params["tags"]
            if operation == "CreatePackage":
                assert params["tags"] == {RUN_TAG: RUN}
        state = iot_state(harness_emulator)
        assert len(state.things) == len(state.groups) == len(state.packages.packages) == 0

    def test_what_was_created_is_deleted_after_a_failure(
        self,
        harness_emulator: EmulatorThread,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def crash(self: OperationFuzzer) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(OperationFuzzer, "negative", crash)
        code, _, _ = fuzz(
            capsys,
            harness_emulator.url,
            "--safety",
            "aws",
            "--allow-writes",
            "--operation",
            "iot.CreateThing",
        )
        assert code == 130  # interrupted
        assert len(iot_state(harness_emulator).things) == 0


def test_the_raw_body_comes_back(harness_emulator: EmulatorThread) -> None:
    with FuzzSession(
        endpoint_url=harness_emulator.url, credentials=("AKIDEXAMPLE", "x")
    ) as session:
        reply = session.call("iot", "DescribeThing", {"thingName": "nope"})
        assert reply is not None and reply.status == 404
        assert reply.body is not None and b"nope" in reply.body
        assert session.call("iot", "DescribeThing", {"thingName": 5}) is not None  # sent as text
        assert (
            session.call(
                "iotwireless", "StartFuotaTask", {"Id": "x", "LoRaWAN": {"StartTime": "yesterday"}}
            )
            is None
        )


def test_aws_without_credentials_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = run(capsys, "fuzz", "--endpoint", "aws", "--operation", "iot.ListThings")
    assert code == 2 and "no AWS credentials" in err
    code, _, err = run(capsys, "sweep", "--run-id", RUN)
    assert code == 2 and "no AWS credentials" in err


class TestSession:
    def test_quotas_hold_the_rate(self, harness_emulator: EmulatorThread) -> None:
        import time

        # ListThings: 10 TPS. The bucket starts full (10), then lets one through every 0.1 s.
        with FuzzSession(
            endpoint_url=harness_emulator.url, credentials=("AKIDEXAMPLE", "x"), quotas=True
        ) as session:
            started = time.monotonic()
            for _ in range(15):
                session.call("iot", "ListThings", {})
            assert time.monotonic() - started >= 0.4
            assert session.stats.stats("iot.ListThings").calls == 15

    def test_throttles_are_retried_not_judged(self, harness_emulator: EmulatorThread) -> None:
        harness_emulator.call(lambda: harness_emulator.core.configure({"throttle": "aws"}))
        with FuzzSession(
            endpoint_url=harness_emulator.url, credentials=("AKIDEXAMPLE", "x"), max_attempts=20
        ) as session:
            replies = [session.call("iot", "ListThings", {}) for _ in range(14)]
            assert all(r is not None and r.ok for r in replies)
            stats = session.stats.stats("iot.ListThings")
            assert stats.throttles > 0 and stats.successes == 14
