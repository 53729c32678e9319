"""The state machines agree with their reference models (``read-after-create`` and the
per-answer checks) for every seed resource type."""

from __future__ import annotations

import pytest
from hypothesis import settings

from harness.fuzz import (
    Cleanup,
    FuzzReport,
    SafetyPolicy,
    describe,
    fuzz_settings,
    machines_for,
    run_machines,
)
from harness.model import SEED_SERVICES

MACHINES = machines_for(SEED_SERVICES)


@pytest.mark.parametrize("machine", MACHINES, ids=[m.__name__ for m in MACHINES])
def test_machine_agrees_with_its_model(target, machine) -> None:
    report = FuzzReport(target.url, "local")
    hypothesis = fuzz_settings(None, settings())
    run_machines(
        target.session, [], report, Cleanup(), SafetyPolicy(), hypothesis, machines=[machine]
    )
    assert not report.errors, report.errors
    assert not report.violations, "\n\n".join(describe(v) for v in report.violations)
    assert report.tally.per_check()["read-after-create"].passed > 0
