"""Small shared types: names that would otherwise be bare strings.

These are :func:`typing.NewType` aliases, so they cost nothing at run time but let mypy tell a
service name from an operation name.
"""

from __future__ import annotations

from typing import Any, NewType

__all__ = ["AccountId", "JSONValue", "OperationName", "Params", "Region", "ServiceName"]

#: A botocore service name as used by ``boto3.client(...)``, e.g. ``"greengrassv2"``.
ServiceName = NewType("ServiceName", str)
#: An API operation name as written in the model, e.g. ``"CreateDeployment"``.
OperationName = NewType("OperationName", str)
#: An AWS region, e.g. ``"us-east-1"``.
Region = NewType("Region", str)
#: A 12-digit AWS account id.
AccountId = NewType("AccountId", str)

#: Request parameters as a boto3 caller passes them (API-level values, not wire values).
Params = dict[str, Any]
#: Any JSON value.
JSONValue = Any
