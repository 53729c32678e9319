"""Every seed operation keeps its contract: the oracle's checks on valid and invalid requests,
and idempotent replays (``harness fuzz`` runs the same properties)."""

from __future__ import annotations

import pytest
from hypothesis import settings

from harness.fuzz import (
    SEED_OPERATIONS,
    Cleanup,
    FuzzReport,
    OperationFuzzer,
    SafetyPolicy,
    describe,
    fuzz_settings,
)
from harness.model import load_service


@pytest.mark.parametrize(
    ("service", "operation"), SEED_OPERATIONS, ids=[f"{s}.{o}" for s, o in SEED_OPERATIONS]
)
def test_operation_keeps_its_contract(target, service: str, operation: str) -> None:
    report = FuzzReport(target.url, "local")
    op = load_service(service).operation(operation)
    fuzzer = OperationFuzzer(
        target.session, op, report, Cleanup(), SafetyPolicy(), fuzz_settings(None, settings())
    )
    fuzzer.positive()
    fuzzer.negative()
    fuzzer.replay()
    assert not report.errors, report.errors
    assert not report.violations, "\n\n".join(describe(v) for v in report.violations)
