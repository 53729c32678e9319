"""Hypothesis strategies for request parameters, valid and invalid, driven by the model.

The only package of harness that imports :mod:`hypothesis`.

>>> from harness.fuzz import invalid_params, valid_params
>>> from harness.model import load_service
>>> op = load_service("greengrassv2").operation("ListDeployments")
>>> strategy = valid_params(op)  # every draw validates: op.validate(params) == []
>>> broken = invalid_params(op)  # draws (params, Breakage): exactly one constraint broken

:func:`valid_values` generates values for any shape; strings of a pattern come from a length-aware
generator (:mod:`harness.fuzz._regex`), so tight length bounds never need filtering.

The wire layer: :func:`openapi_document` turns a rest-json or json model into OpenAPI 3.1,
:func:`run_schemathesis` fuzzes an endpoint with it (signed by :class:`SigV4Auth`, judged by
AWS-aware checks) and returns :class:`Violation` s; :func:`load_schema` gives the same configured
Schemathesis schema to pytest suites.

The contract runs: :func:`run_fuzz` sends drawn requests through a :class:`FuzzSession` (the
transport, throttled by the engine's token buckets) and judges every answer with the oracle's
named checks (:data:`CHECKS`), shrinking each violation; :func:`run_machines` runs the stateful
suites; a :class:`SafetyPolicy` keeps runs against AWS read-only unless writes are allowed, and
marks and deletes what they create (:func:`sweep` finds what a dead run left).
"""

from __future__ import annotations

from harness.fuzz._invalid import Breakage, invalid_params
from harness.fuzz._openapi import COMMON_ERRORS, openapi_document
from harness.fuzz._report import (
    FuzzReport,
    describe,
    load_baseline,
    summary_text,
    write_baseline,
    write_junit,
)
from harness.fuzz._resources import Cleanup
from harness.fuzz._runner import (
    SEED_OPERATIONS,
    FuzzConfig,
    OperationFuzzer,
    fuzz_settings,
    run_fuzz,
)
from harness.fuzz._safety import SafetyPolicy, new_run_id
from harness.fuzz._schemathesis import (
    EMULATOR_CREDENTIALS,
    EXCLUDED_CHECKS,
    load_schema,
    run_schemathesis,
)
from harness.fuzz._session import FuzzSession
from harness.fuzz._sigv4 import SigV4Auth
from harness.fuzz._stateful import machines_for, run_machines
from harness.fuzz._strategies import valid_params, valid_values
from harness.fuzz._sweep import sweep
from harness.fuzz._violations import CHECKS, Violation, boto3_snippet

__all__ = [
    "CHECKS",
    "COMMON_ERRORS",
    "EMULATOR_CREDENTIALS",
    "EXCLUDED_CHECKS",
    "SEED_OPERATIONS",
    "Breakage",
    "Cleanup",
    "FuzzConfig",
    "FuzzReport",
    "FuzzSession",
    "OperationFuzzer",
    "SafetyPolicy",
    "SigV4Auth",
    "Violation",
    "boto3_snippet",
    "describe",
    "fuzz_settings",
    "invalid_params",
    "load_baseline",
    "load_schema",
    "machines_for",
    "new_run_id",
    "openapi_document",
    "run_fuzz",
    "run_machines",
    "run_schemathesis",
    "summary_text",
    "sweep",
    "valid_params",
    "valid_values",
    "write_baseline",
    "write_junit",
]
