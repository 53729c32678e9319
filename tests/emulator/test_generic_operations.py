"""Every operation of the five models is answered without a 5xx, through botocore.

Two parts:

* each operation, called with deterministic example parameters (required members only, then every
  member), gets a 2xx or a 4xx error it declares (or a generic validation / not-found / conflict
  error), never a 5xx nor an error botocore cannot parse; the fixture also checks that no
  response broke its output shape;
* property tests on the seed operations with :mod:`harness.fuzz`: valid requests are never
  refused by the model validator, and requests that break one constraint get the operation's
  validation error.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest
from hypothesis import event, given, note, settings

from harness.emulator import EmulatorThread
from harness.fuzz import Breakage, invalid_params, valid_params
from harness.fuzz._sendable import unsendable
from harness.model import SEED_SERVICES, Operation, example_value, load_service

#: Errors any operation may answer although not every operation declares them: the emulator's
#: model validation, a missing resource, an idempotency conflict.
GENERIC_ERRORS = frozenset(
    {
        "ValidationException",
        "InvalidRequestException",
        "ResourceNotFoundException",
        "ConflictException",
    }
)
VALIDATION_ERRORS = frozenset({"ValidationException", "InvalidRequestException"})
#: How the core words a model validation failure (``format_issues``); handlers word theirs.
MODEL_VALIDATION = re.compile(r"\d+ validation errors? detected: ")

#: Emulator-core bugs (shared files we may not edit), reported and excluded until fixed.
#: Emulator bugs known and not yet fixed (each must be fixed, not kept): none today.
KNOWN_EMULATOR_BUGS: dict[tuple[str, str], str] = {}
#: Operations botocore cannot call with example parameters (streaming outputs, event streams):
#: none of the five models has one today, so nothing is skipped for that reason.
UNCALLABLE: dict[tuple[str, str], str] = {}


@functools.cache
def _session() -> boto3.session.Session:
    # One session for the module: a session caches the loaded models, and loading IoT's for each
    # of the ~1,200 tests (as a fresh ``aws_client`` session per test does) takes minutes.
    return boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    )


def raw_client(url: str, service: str) -> Any:
    """A botocore client that sends whatever it is given (no client-side validation, no retry)."""
    config = botocore.config.Config(
        retries={"max_attempts": 0, "mode": "standard"}, parameter_validation=False
    )
    return _session().client(service, endpoint_url=url, config=config)


#: One client per service for the per-operation tests (they register no event handlers).
_shared_client = functools.cache(raw_client)


def _operations() -> list[Any]:
    cases = []
    for service in SEED_SERVICES:
        for name in load_service(service).operations:
            reason = KNOWN_EMULATOR_BUGS.get((service, name)) or UNCALLABLE.get((service, name))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(service, name, marks=marks, id=f"{service}.{name}"))
    return cases


def answer(client: Any, operation: str, params: dict[str, Any]) -> tuple[int, str | None, str]:
    """``(status, error code or None, error message)`` of one call."""
    try:
        response = client._make_api_call(operation, params)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return status, error.get("Code"), error.get("Message", "")
    return response["ResponseMetadata"]["HTTPStatusCode"], None, ""


def assert_acceptable(op: Operation, status: int, code: str | None) -> None:
    """A 2xx, or a 4xx the operation declares (with its modeled status) or a generic one."""
    if code is None:
        assert 200 <= status < 300, f"{op.name}: success with status {status}"
        return
    declared = op.error(code)
    assert 400 <= status < 500, f"{op.name}: {code} with status {status}"
    assert declared is not None or code in GENERIC_ERRORS, f"{op.name}: undeclared error {code!r}"
    if declared is not None:
        assert status == declared.status, f"{op.name}: {code} is modeled as {declared.status}"


@pytest.mark.parametrize("required_only", [True, False], ids=["required", "full"])
@pytest.mark.parametrize(("service", "operation"), _operations())
def test_every_operation_answers_without_a_5xx(
    harness_emulator: EmulatorThread, service: str, operation: str, required_only: bool
) -> None:
    op = load_service(service).operation(operation)
    client = _shared_client(harness_emulator.url, service)
    params = example_value(op.input, required_only=required_only) if op.input else {}
    status, code, _ = answer(client, operation, params)
    assert_acceptable(op, status, code)


# --------------------------------------------------------------------------- property tests
SEED_OPERATIONS = [
    ("iot", "CreateThing"),
    ("iot", "CreateThingGroup"),
    ("iot", "CreatePackageVersion"),
    ("iot", "ListThings"),
    ("greengrassv2", "CreateDeployment"),
    ("greengrassv2", "ListDeployments"),
    ("iotwireless", "CreateFuotaTask"),
    ("proton", "CreateEnvironmentTemplateVersion"),
    ("iot-managed-integrations", "CreateOtaTask"),
]
_SEED_IDS = [f"{s}.{o}" for s, o in SEED_OPERATIONS]
# Which broken requests reach the emulator as broken: the oracle's own rules.


#: (service, operation) -> [(parameter naming a parent, method creating it, its name member)]
_PARENTS: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("iot", "CreateThing"): [
        ("thingTypeName", "create_thing_type", "thingTypeName"),
        ("billingGroupName", "create_billing_group", "billingGroupName"),
    ],
    ("iot", "CreateThingGroup"): [("parentGroupName", "create_thing_group", "thingGroupName")],
    ("iot", "CreatePackageVersion"): [("packageName", "create_package", "packageName")],
    ("proton", "CreateEnvironmentTemplateVersion"): [
        ("templateName", "create_environment_template", "name")
    ],
}


def _prepare(client: Any, service: str, operation: str, params: dict[str, Any]) -> None:
    """Create the resources a valid request names, so that it gets past existence checks.

    Without them most drawn requests would only exercise "the parent does not exist".
    """
    for member, method, name in _PARENTS.get((service, operation), []):
        if params.get(member) is None:
            continue
        try:
            getattr(client, method)(**{name: params[member]})
        except botocore.exceptions.ClientError:
            pass  # it exists already, from an earlier example


def _sent_flag(client: Any) -> list[bool]:
    """A flag botocore sets once the request is on its way (past client-side serialization)."""
    sent: list[bool] = []
    client.meta.events.register("before-send", lambda **_: sent.append(True))
    return sent


@pytest.mark.parametrize(("service", "operation"), SEED_OPERATIONS, ids=_SEED_IDS)
def test_valid_requests_pass_validation(
    harness_emulator: EmulatorThread, service: str, operation: str
) -> None:
    op = load_service(service).operation(operation)
    client = raw_client(harness_emulator.url, service)
    token = op.paginator.input_token[0] if op.paginator else None

    @settings(max_examples=15, deadline=None)
    @given(params=valid_params(op))
    def check(params: dict[str, Any]) -> None:
        assert op.validate(params) == []
        # A pagination token is valid to the model but the emulator, like AWS, accepts only the
        # tokens it issued: a drawn one is refused for its meaning, not its form.
        params.pop(token or "", None)
        _prepare(client, service, operation, params)
        status, code, message = answer(client, operation, params)
        event(f"{status} {code or ''}")
        note(f"answer: {status} {code} {message}")
        assert_acceptable(op, status, code)
        # Handlers may refuse a valid request for its meaning (an unknown parent, a bad
        # combination): only the core's model validation must never refuse it.
        assert not (code in VALIDATION_ERRORS and MODEL_VALIDATION.match(message)), message

    check()


@pytest.mark.parametrize(("service", "operation"), SEED_OPERATIONS, ids=_SEED_IDS)
def test_invalid_requests_get_the_validation_error(
    harness_emulator: EmulatorThread, service: str, operation: str
) -> None:
    op = load_service(service).operation(operation)
    client = raw_client(harness_emulator.url, service)
    sent = _sent_flag(client)
    expected = {e.name for e in op.errors} & VALIDATION_ERRORS
    assert len(expected) == 1, f"{operation} declares {expected}"

    @settings(max_examples=15, deadline=None)
    @given(case=invalid_params(op))
    def check(case: tuple[dict[str, Any], Breakage]) -> None:
        params, breakage = case
        note(f"breakage: {breakage}")
        sent.clear()
        try:
            status, code, message = answer(client, operation, params)
        except Exception as exc:
            # botocore could not serialize the broken value (a string for a timestamp, an
            # integer for a blob...): nothing reached the emulator.
            if sent:
                raise
            event(f"unsendable: {type(exc).__name__}")
            return
        reason = unsendable(op, params, breakage)
        note(f"answer: {status} {code} {message}; unsendable: {reason}")
        assert status < 500, f"{status} {code}: {message}"
        if reason is not None:
            # What arrived may be valid, or another operation's request: any parsed non-5xx.
            event(f"unsendable: {reason}")
            assert code is None or not code.isdigit(), f"unparsed error {status}: {message}"
            return
        event(f"sent: {breakage.constraint}")
        assert code in expected and status == 400, f"{status} {code}: {message}"
        assert message.startswith("1 validation error detected: "), message
        assert breakage.path in message, message

    check()
