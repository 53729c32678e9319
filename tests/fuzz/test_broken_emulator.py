"""A deliberately broken emulator is caught, each bug by the check named for it.

Each test breaks one thing in an in-process emulator (monkeypatching its validation, a handler,
its idempotency cache or its fault rate: never its code), runs the property that should notice,
and expects a violation of exactly that check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from harness.emulator import EmulatorSettings, EmulatorThread
from harness.emulator._context import ApiError
from harness.emulator._state import IdempotencyCache
from harness.fuzz import (
    Cleanup,
    FuzzReport,
    FuzzSession,
    OperationFuzzer,
    SafetyPolicy,
    fuzz_settings,
    run_machines,
)
from harness.fuzz._machines_iot import ThingsMachine
from harness.model import Validator, load_service


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    # Not the shared fixture: that one checks responses inside the emulator (a broken response
    # becomes a 500 there), and here the client-side checks must see the broken response.
    with EmulatorThread(settings=EmulatorSettings(seed=1)) as emu:
        yield emu


@pytest.fixture
def session(emulator: EmulatorThread) -> Iterator[FuzzSession]:
    emulator.call(emulator.core.reset)
    with FuzzSession(endpoint_url=emulator.url, credentials=("AKIDEXAMPLE", "x")) as session:
        yield session


def fuzz(
    session: FuzzSession, service: str, operation: str, run: str, examples: int = 60
) -> FuzzReport:
    """Run one property of one operation; return the report."""
    report = FuzzReport(session.endpoint_url or "", "test")
    hypothesis = fuzz_settings(examples, settings(derandomize=True))
    op = load_service(service).operation(operation)
    fuzzer = OperationFuzzer(session, op, report, Cleanup(), SafetyPolicy(), hypothesis)
    getattr(fuzzer, run)()
    assert not report.errors, report.errors
    return report


def wrap_handler(
    emulator: EmulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    key: tuple[str, str],
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    original = emulator.core._handlers[key]
    monkeypatch.setitem(
        emulator.core._handlers, key, lambda ctx, params: change(original(ctx, params))
    )


def test_a_missing_max_length_check_is_invalid_rejected(
    session: FuzzSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Validator.validate

    def without_max(self: Validator, operation: Any, params: Any) -> Any:
        issues = original(self, operation, params)
        if operation.name == "CreateThing":
            # The emulator stops checking maximum lengths of CreateThing's members.
            issues = [i for i in issues if i.constraint != "max"]
        return issues

    monkeypatch.setattr(Validator, "validate", without_max)
    report = fuzz(session, "iot", "CreateThing", "negative", examples=150)
    found = {(v.check, v.message) for v in report.violations}
    assert {c for c, _ in found} == {"invalid-rejected"}, found
    assert all("breaking max at" in m for _, m in found), found
    shrunk = report.violations[0]
    assert shrunk.status == 200 and shrunk.operation == "iot.CreateThing"
    assert "client.create_thing(**params)" in shrunk.snippet


def test_the_same_emulator_unbroken_passes(session: FuzzSession) -> None:
    report = fuzz(session, "iot", "CreateThing", "negative", examples=150)
    assert report.violations == []
    assert report.tally.per_check()["invalid-rejected"].passed > 0


def test_a_wrong_enum_in_a_response_is_response_conforms(
    emulator: EmulatorThread, session: FuzzSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    def add_a_bad_deployment(output: dict[str, Any]) -> dict[str, Any]:
        bad = {
            "targetArn": "arn:aws:iot:us-east-1:123456789012:thing/t",
            "revisionId": "1",
            "deploymentId": "d",
            "creationTimestamp": 1.0,
            "isLatestForTarget": True,
            "deploymentStatus": "EXPLODED",
        }
        return {**output, "deployments": [*output.get("deployments", []), bad]}

    wrap_handler(emulator, monkeypatch, ("greengrassv2", "ListDeployments"), add_a_bad_deployment)
    report = fuzz(session, "greengrassv2", "ListDeployments", "positive", examples=10)
    assert [v.check for v in report.violations] == ["response-conforms"]
    assert "deploymentStatus" in report.violations[0].message
    assert "EXPLODED" in report.violations[0].body


def test_an_undeclared_error_is_error_declared(
    emulator: EmulatorThread, session: FuzzSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(ctx: Any, params: Any) -> Any:
        raise ApiError("GoneFishingException", "closed", 400)

    monkeypatch.setitem(emulator.core._handlers, ("greengrassv2", "ListDeployments"), refuse)
    report = fuzz(session, "greengrassv2", "ListDeployments", "positive", examples=10)
    assert [(v.check, v.message) for v in report.violations] == [
        ("error-declared", "GoneFishingException is not declared")
    ]


def test_server_errors_are_no_5xx(emulator: EmulatorThread, session: FuzzSession) -> None:
    emulator.call(lambda: emulator.core.configure({"fault_rate": 1.0}))
    try:
        report = fuzz(session, "iot", "ListThings", "positive", examples=5)
    finally:
        emulator.call(lambda: emulator.core.configure({"fault_rate": 0.0}))
    assert {v.check for v in report.violations} == {"no-5xx", "valid-accepted"}


def test_a_forgotten_client_token_is_idempotent_replay(
    emulator: EmulatorThread, session: FuzzSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(IdempotencyCache, "get", lambda self, key, now: None)
    report = fuzz(session, "greengrassv2", "CreateDeployment", "replay", examples=5)
    messages = sorted(v.message for v in report.violations if v.check == "idempotent-replay")
    assert any("answered other ids" in m for m in messages), messages
    assert any("not a conflict" in m for m in messages), messages


def test_a_describe_that_loses_attributes_is_read_after_create(
    emulator: EmulatorThread, session: FuzzSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrap_handler(
        emulator, monkeypatch, ("iot", "DescribeThing"), lambda out: {**out, "attributes": {}}
    )
    report = FuzzReport(emulator.url, "test")
    hypothesis = fuzz_settings(60, settings(derandomize=True))
    run_machines(
        session, ["iot"], report, Cleanup(), SafetyPolicy(), hypothesis, machines=[ThingsMachine]
    )
    assert not report.errors, report.errors
    assert [(v.check, v.operation) for v in report.violations] == [
        ("read-after-create", "iot.DescribeThing")
    ]
    violation = report.violations[0]
    assert "create_thing" in violation.snippet and "describe_thing" in violation.snippet


def test_a_body_naming_another_error_type_is_error_declared(
    emulator: EmulatorThread, session: FuzzSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.emulator._core as core

    original = core.encode_error

    def mislabelled(*args: Any, **kwargs: Any) -> Any:
        status, headers, body = original(*args, **kwargs)
        return (
            status,
            headers,
            body.replace(b"{", b'{"__type":"com.amazonaws.iot#ConflictException",', 1),
        )

    monkeypatch.setattr(core, "encode_error", mislabelled)
    report = fuzz(session, "iot", "DescribeThing", "positive", examples=5)
    assert [(v.check, v.message) for v in report.violations] == [
        ("error-declared", "the header names ResourceNotFoundException, the body ConflictException")
    ]
