"""The model layer: the only code that reads ``specs/``.

Load a pinned service model, find operations by API or Python name, walk shapes, validate request
parameters against every constraint, look up paginators and quotas, compare two models.

>>> from harness.model import load_service
>>> op = load_service("greengrassv2").operation("list_deployments")
>>> [str(i) for i in op.validate({"maxResults": 500})]
['maxResults: value 500 is above the maximum 100']
"""

from __future__ import annotations

from harness.model._diff import Change, ModelDiff, diff_models
from harness.model._examples import example_value, regex_example
from harness.model._matcher import PatternMatcher, fallback_patterns, pattern_matcher
from harness.model._patterns import UnsupportedPattern, compile_pattern, translate_pattern
from harness.model._quotas import Quota, QuotaTable, load_quotas
from harness.model._refs import parse_operation_ref, split_operation_ref
from harness.model._service import (
    THROTTLING_CODES,
    ErrorRef,
    Operation,
    Paginator,
    ServiceModel,
    load_service,
)
from harness.model._shapes import Member, Shape
from harness.model._specs import (
    SEED_SERVICES,
    SyncResult,
    installed_botocore_version,
    pinned_services,
    specs_dir,
    sync_specs,
)
from harness.model._validator import ValidationIssue, Validator, format_issues

__all__ = [
    "SEED_SERVICES",
    "THROTTLING_CODES",
    "Change",
    "ErrorRef",
    "Member",
    "ModelDiff",
    "Operation",
    "Paginator",
    "PatternMatcher",
    "Quota",
    "QuotaTable",
    "ServiceModel",
    "Shape",
    "SyncResult",
    "UnsupportedPattern",
    "ValidationIssue",
    "Validator",
    "compile_pattern",
    "diff_models",
    "example_value",
    "fallback_patterns",
    "format_issues",
    "installed_botocore_version",
    "load_quotas",
    "load_service",
    "parse_operation_ref",
    "pattern_matcher",
    "pinned_services",
    "regex_example",
    "specs_dir",
    "split_operation_ref",
    "sync_specs",
    "translate_pattern",
]
