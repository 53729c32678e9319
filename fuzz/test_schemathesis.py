"""Schemathesis on the seed operations of the five services, as a pytest suite.

    pytest fuzz/test_schemathesis.py                      # against an embedded emulator
    pytest fuzz/test_schemathesis.py --endpoint URL       # when fuzz/conftest.py provides it
    HYPOTHESIS_PROFILE=nightly pytest fuzz/test_schemathesis.py

One pytest test per operation (``@schema.parametrize()``); each case is signed with SigV4, sent
with ``case.call_and_validate`` and judged by the checks :func:`harness.fuzz.load_schema`
configures: Schemathesis's own minus those that misfire on AWS semantics
(:data:`harness.fuzz.EXCLUDED_CHECKS`), plus the AWS-aware ones. Examples per operation come from
the active Hypothesis profile (``HARNESS_FUZZ_EXAMPLES`` overrides it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from harness.emulator import EmulatorThread
from harness.fuzz import EMULATOR_CREDENTIALS, SigV4Auth, load_schema

REGION = "us-east-1"
SEED_OPERATIONS: dict[str, list[str]] = {
    "iot": [
        "CreateThing",
        "DescribeThing",
        "ListThings",
        "CreateThingGroup",
        "AddThingToThingGroup",
        "ListThingsInThingGroup",
        "CreatePackage",
        "CreatePackageVersion",
        "ListPackageVersions",
    ],
    "greengrassv2": ["CreateDeployment", "GetDeployment", "ListDeployments"],
    "iotwireless": ["CreateFuotaTask", "GetFuotaTask", "ListFuotaTasks"],
    "proton": [
        "CreateEnvironmentTemplate",
        "CreateEnvironmentTemplateVersion",
        "ListEnvironmentTemplateVersions",
    ],
    "iot-managed-integrations": ["CreateOtaTask", "GetOtaTask", "ListOtaTasks"],
}
# Cases per operation and generation mode: None leaves it to the active Hypothesis profile (the
# ci profile's 25 take about 25 s over the 21 operations, both modes).
EXAMPLES = int(os.environ.get("HARNESS_FUZZ_EXAMPLES", 0)) or None
SCHEMAS = {
    service: load_schema(service, operations=operations, examples=EXAMPLES)
    for service, operations in SEED_OPERATIONS.items()
}


@pytest.fixture(scope="module")
def endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """``fuzz_endpoint`` when fuzz/conftest.py provides it, else an emulator of our own."""
    try:
        url = request.getfixturevalue("fuzz_endpoint")
    except pytest.FixtureLookupError:
        pass
    else:
        yield str(url)
        return
    with EmulatorThread() as emu:
        yield emu.url


def _exercise(case: Any, endpoint: str) -> None:
    service = case.operation.schema.raw_schema["info"]["x-aws-service"]
    # Real AWS takes the standard credential chain; anything else (the emulator) takes any.
    credentials = None if ".amazonaws.com" in endpoint else EMULATOR_CREDENTIALS
    auth = SigV4Auth.for_service(service, REGION, credentials)
    case.call_and_validate(base_url=endpoint, auth=auth)


@SCHEMAS["iot"].parametrize()
def test_iot(case: Any, endpoint: str) -> None:
    _exercise(case, endpoint)


@SCHEMAS["greengrassv2"].parametrize()
def test_greengrassv2(case: Any, endpoint: str) -> None:
    _exercise(case, endpoint)


@SCHEMAS["iotwireless"].parametrize()
def test_iotwireless(case: Any, endpoint: str) -> None:
    _exercise(case, endpoint)


@SCHEMAS["proton"].parametrize()
def test_proton(case: Any, endpoint: str) -> None:
    _exercise(case, endpoint)


@SCHEMAS["iot-managed-integrations"].parametrize()
def test_iot_managed_integrations(case: Any, endpoint: str) -> None:
    _exercise(case, endpoint)
