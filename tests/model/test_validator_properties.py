"""Property tests of the validator against the model-driven strategies of :mod:`harness.fuzz`.

* every request :func:`~harness.fuzz.valid_params` draws validates with no issue;
* every request :func:`~harness.fuzz.invalid_params` draws (one constraint broken on purpose) is
  reported with exactly that issue: the labelled constraint at the labelled path, and nothing else.

The strategies keep every other constraint intact (a too-long string still matches its pattern, a
string off its pattern keeps a valid length...), so a second issue is always a bug on one side.
Operations: all of greengrassv2, proton and iotwireless; the seed operations of iot and
iot-managed-integrations plus a fixed random sample of their others.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fuzz import invalid_params, valid_params
from harness.model import SEED_SERVICES, load_service

EVERY_OPERATION = ("greengrassv2", "proton", "iotwireless")
SEED_OPERATIONS = {
    "iot": (
        "CreatePackageVersion",
        "CreatePackage",
        "CreateThing",
        "CreateThingGroup",
        "AddThingToThingGroup",
        "ListThings",
        "ListThingsInThingGroup",
        "ListPackageVersions",
    ),
    "iot-managed-integrations": ("CreateOtaTask", "ListOtaTasks", "GetOtaTask"),
}
#: How many other operations to sample (with a fixed seed, so runs are comparable).
SAMPLED = {"iot": 16, "iot-managed-integrations": 10}


def _operations() -> list[tuple[str, str]]:
    chosen: list[tuple[str, str]] = []
    for service in SEED_SERVICES:
        names = sorted(load_service(service).operations)
        if service in EVERY_OPERATION:
            chosen += [(service, name) for name in names]
            continue
        seeds = SEED_OPERATIONS[service]
        others = [name for name in names if name not in seeds]
        sample = random.Random(f"{service} sample").sample(others, SAMPLED[service])
        chosen += [(service, name) for name in (*seeds, *sorted(sample))]
    return chosen


OPERATIONS = [pytest.param(s, n, id=f"{s}.{n}") for s, n in _operations()]


def test_the_sample_covers_the_seed_operations() -> None:
    chosen = set(_operations())
    for service, names in SEED_OPERATIONS.items():
        assert {(service, name) for name in names} <= chosen
    for service in EVERY_OPERATION:
        assert {(service, n) for n in load_service(service).operations} <= chosen


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
@settings(max_examples=20, deadline=None, database=None)
@given(data=st.data())
def test_valid_params_validate(service: str, name: str, data: st.DataObject) -> None:
    op = load_service(service).operation(name)
    params = data.draw(valid_params(op), label="params")
    assert op.validate(params) == []


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
@settings(max_examples=25, deadline=None, database=None)
@given(data=st.data())
def test_a_broken_constraint_is_reported_alone(
    service: str, name: str, data: st.DataObject
) -> None:
    op = load_service(service).operation(name)
    params, breakage = data.draw(invalid_params(op), label="params, breakage")
    found = [(issue.path, issue.constraint) for issue in op.validate(params)]
    assert (breakage.path, breakage.constraint) in found, breakage.description
    # No exception: every mutation keeps the other constraints intact (see harness.fuzz._invalid).
    assert found == [(breakage.path, breakage.constraint)], breakage.description
