"""Hypothesis strategies for request parameters, valid and invalid, driven by the model.

The only package of harness that imports :mod:`hypothesis`.

>>> from harness.fuzz import invalid_params, valid_params
>>> from harness.model import load_service
>>> op = load_service("greengrassv2").operation("ListDeployments")
>>> strategy = valid_params(op)  # every draw validates: op.validate(params) == []
>>> broken = invalid_params(op)  # draws (params, Breakage): exactly one constraint broken

:func:`valid_values` generates values for any shape; strings of a pattern come from a length-aware
generator (:mod:`harness.fuzz._regex`), so tight length bounds never need filtering.
"""

from __future__ import annotations

from harness.fuzz._invalid import Breakage, invalid_params
from harness.fuzz._strategies import valid_params, valid_values
from harness.fuzz._violations import CHECKS, Violation, boto3_snippet

__all__ = [
    "CHECKS",
    "Breakage",
    "Violation",
    "boto3_snippet",
    "invalid_params",
    "valid_params",
    "valid_values",
]
