"""Service and operation models: what every other layer asks about an AWS API."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import yaml
from botocore import xform_name

from harness.errors import ModelError, RequestValidationError, UnknownOperation
from harness.model._quotas import Quota, load_quotas
from harness.model._shapes import Shape, build_shapes
from harness.model._specs import read_model_files, specs_dir

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.model._validator import ValidationIssue

__all__ = [
    "THROTTLING_CODES",
    "ErrorRef",
    "Operation",
    "Paginator",
    "ServiceModel",
    "load_service",
]

#: Error codes botocore's standard retry mode treats as throttling (botocore retries/standard.py).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)


#: How a model documents an error that means "an earlier request with this client token is still
#: being processed" (Greengrass V2's RequestAlreadyInProgressException: "The request is already in
#: progress. This exception occurs when you use a client token for multiple requests while IoT
#: Greengrass is still processing an earlier request that uses the same client token.").
_IN_PROGRESS_DOC = re.compile(
    r"already in progress|still processing an earlier request", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class ErrorRef:
    """An error an operation declares, with its wire code and HTTP status.

    ``in_progress`` marks an error whose documentation says an earlier request with the same
    client token is still being processed: retrying later gets that request's answer.
    """

    name: str
    code: str
    status: int
    shape: Shape = field(repr=False)
    sender_fault: bool
    throttling: bool
    retryable: bool
    in_progress: bool = False


@dataclass(frozen=True, slots=True)
class Paginator:
    """How to page through a list operation.

    :param derived: ``True`` when botocore has no paginator and we derived this one from the shapes
    """

    input_token: tuple[str, ...]
    output_token: tuple[str, ...]
    result_key: tuple[str, ...]
    limit_key: str | None = None
    more_results: str | None = None
    derived: bool = False


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (str(value),)


@dataclass(frozen=True, slots=True, eq=False)
class Operation:
    """One API operation, with everything derived from the model that other layers need."""

    service: ServiceModel = field(repr=False)
    name: str
    python_name: str
    http_method: str
    request_uri: str
    success_code: int
    input: Shape | None = field(repr=False)
    output: Shape | None = field(repr=False)
    errors: tuple[ErrorRef, ...] = field(repr=False)
    idempotent: bool
    idempotency_members: tuple[str, ...]
    paginator: Paginator | None
    quota: Quota
    deprecated: bool
    host_prefix: str | None = None

    @property
    def path_template(self) -> str:
        """The request URI without its static query string (``/things/{thingName}``)."""
        return self.request_uri.split("?", 1)[0]

    @property
    def static_query(self) -> str:
        """The static query string of the request URI, if the model gives one."""
        return self.request_uri.split("?", 1)[1] if "?" in self.request_uri else ""

    def error(self, name: str) -> ErrorRef | None:
        """The declared error called ``name`` (shape name or code), if any."""
        for ref in self.errors:
            if ref.name == name or ref.code == name:
                return ref
        return None

    def validate(self, params: Mapping[str, Any]) -> list[ValidationIssue]:
        """Every constraint of the input shape that ``params`` breaks (empty when valid)."""
        return self.service.validator.validate(self, params)

    def check(self, params: Mapping[str, Any]) -> None:
        """Validate ``params``.

        :raises RequestValidationError: listing every broken constraint with its path
        """
        issues = self.validate(params)
        if issues:
            raise RequestValidationError(self.service.name, self.name, issues)


@lru_cache(maxsize=1)
def _pattern_overlay() -> list[dict[str, Any]]:
    path = specs_dir() / "overlays" / "patterns.yaml"
    if not path.exists():
        return []
    try:
        entries = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise ModelError(f"pattern overlay {path} is not valid YAML: {exc}") from None
    if not isinstance(entries, list):
        raise ModelError(f"pattern overlay {path} must be a list of entries")
    return entries


def _pattern_overrides(service: str, raw_shapes: Mapping[str, Any]) -> dict[str, str | None]:
    overrides: dict[str, str | None] = {}
    for entry in _pattern_overlay():
        if entry.get("service") != service:
            continue
        raw = raw_shapes.get(entry.get("shape", ""))
        # Only apply the overlay to the exact pattern it was written for: if a newer model fixes
        # the pattern, the model wins.
        if raw is not None and raw.get("pattern") == entry.get("pattern"):
            overrides[entry["shape"]] = None if entry.get("skip") else entry.get("replace")
    return overrides


def _error_ref(shape: Shape, protocol: str) -> ErrorRef:
    error = shape.error
    status = int(error.get("httpStatusCode", 500 if shape.fault else 400))
    retryable = shape.retryable is not None
    throttling = bool(shape.retryable and shape.retryable.get("throttling")) or (
        shape.name in THROTTLING_CODES
    )
    return ErrorRef(
        name=shape.name,
        code=str(error.get("code", shape.name)),
        status=status,
        shape=shape,
        sender_fault=bool(error.get("senderFault", not shape.fault)),
        throttling=throttling,
        retryable=retryable,
        in_progress=bool(_IN_PROGRESS_DOC.search(str(shape.raw.get("documentation", "")))),
    )


def _derive_paginator(name: str, input: Shape | None, output: Shape | None) -> Paginator | None:
    """A paginator for list operations botocore has none for (e.g. iotwireless ListFuotaTasks)."""
    if input is None or output is None or not name.startswith("List"):
        return None
    token_in = next((m for m in input.members if m.lower() == "nexttoken"), None)
    token_out = next((m for m in output.members if m.lower() == "nexttoken"), None)
    lists = [m for m, ref in output.members.items() if ref.shape.type == "list"]
    if token_in is None or token_out is None or len(lists) != 1:
        return None
    limit = next((m for m in input.members if m.lower() == "maxresults"), None)
    return Paginator((token_in,), (token_out,), (lists[0],), limit, None, derived=True)


class ServiceModel:
    """A service model: metadata, shapes and operations.

    Build one with :func:`load_service`. Operations are looked up by API name
    (``CreateDeployment``) or Python name (``create_deployment``) with :meth:`operation`.
    """

    def __init__(
        self, name: str, model: Mapping[str, Any], paginators: Mapping[str, Any], source: str
    ) -> None:
        meta = model.get("metadata", {})
        self.name = name
        self.source = source
        self.raw = model
        self.api_version: str = meta.get("apiVersion", "")
        protocols = meta.get("protocols") or [meta.get("protocol", "")]
        self.protocol: str = protocols[0]
        self.json_version: str = meta.get("jsonVersion", "1.1")
        self.target_prefix: str | None = meta.get("targetPrefix")
        self.endpoint_prefix: str = meta.get("endpointPrefix", name)
        self.signing_name: str = meta.get("signingName") or self.endpoint_prefix
        self.service_id: str = meta.get("serviceId", name)
        self.full_name: str = meta.get("serviceFullName", name)
        self.shapes: Mapping[str, Shape] = build_shapes(
            model.get("shapes", {}), _pattern_overrides(name, model.get("shapes", {}))
        )
        quotas = load_quotas(specs_dir() / "quotas.yaml")
        ops: dict[str, Operation] = {}
        for op_name, raw in model.get("operations", {}).items():
            ops[op_name] = self._operation(
                op_name, raw, paginators.get(op_name), quotas.get(name, op_name)
            )
        self.operations: Mapping[str, Operation] = ops
        self._by_python = {op.python_name: op for op in ops.values()}

    def _operation(
        self,
        op_name: str,
        raw: Mapping[str, Any],
        paginator: Mapping[str, Any] | None,
        quota: Quota,
    ) -> Operation:
        http = raw.get("http", {})
        input = self.shapes[raw["input"]["shape"]] if "input" in raw else None
        output = self.shapes[raw["output"]["shape"]] if "output" in raw else None
        errors = tuple(
            _error_ref(self.shapes[e["shape"]], self.protocol) for e in raw.get("errors", ())
        )
        page: Paginator | None = None
        if paginator:
            page = Paginator(
                input_token=_as_tuple(paginator.get("input_token")),
                output_token=_as_tuple(paginator.get("output_token")),
                result_key=_as_tuple(paginator.get("result_key")),
                limit_key=paginator.get("limit_key"),
                more_results=paginator.get("more_results"),
            )
        else:
            page = _derive_paginator(op_name, input, output)
        idem = (
            tuple(m for m, ref in input.members.items() if ref.idempotency_token) if input else ()
        )
        return Operation(
            service=self,
            name=op_name,
            python_name=xform_name(op_name),
            http_method=http.get("method", "POST"),
            request_uri=http.get("requestUri", "/"),
            success_code=int(http.get("responseCode", 200)),
            input=input,
            output=output,
            errors=errors,
            idempotent=bool(raw.get("idempotent")),
            idempotency_members=idem,
            paginator=page,
            quota=quota,
            deprecated=bool(raw.get("deprecated")),
            host_prefix=raw.get("endpoint", {}).get("hostPrefix"),
        )

    def __repr__(self) -> str:
        ops = len(self.operations)
        return f"<ServiceModel {self.name} {self.api_version} {self.protocol} ops={ops}>"

    def operation(self, name: str) -> Operation:
        """Find an operation by API name or Python name.

        :raises UnknownOperation: with the closest names as suggestions
        """
        found = self.operations.get(name) or self._by_python.get(name)
        if found is not None:
            return found
        choices = list(self.operations) + list(self._by_python)
        raise UnknownOperation(self.name, name, difflib.get_close_matches(name, choices, n=3))

    def shape(self, name: str) -> Shape:
        """A shape by name.

        :raises ModelError: when the model has no such shape
        """
        try:
            return self.shapes[name]
        except KeyError:
            raise ModelError(f"service {self.name!r} has no shape {name!r}") from None

    @cached_property
    def errors(self) -> Mapping[str, ErrorRef]:
        """Every error shape of the service, by shape name."""
        return {s.name: _error_ref(s, self.protocol) for s in self.shapes.values() if s.exception}

    @cached_property
    def validator(self) -> Validator:
        """The compiled request validator of this service (built on first use)."""
        from harness.model._validator import Validator

        return Validator()


if TYPE_CHECKING:
    from harness.model._validator import Validator


@lru_cache(maxsize=32)
def load_service(name: str, source: str = "pinned") -> ServiceModel:
    """Load (and cache) a service model.

    :param name: botocore service name, e.g. ``"greengrassv2"``
    :param source: ``"pinned"`` (default, ``specs/``), ``"botocore"`` (the installed botocore's
        model) or the path of a ``service-2.json`` file
    :raises UnknownService: when no model exists for ``name``
    """
    model, paginators, where = read_model_files(name, source)
    return ServiceModel(name, model, paginators, where)
