"""AWS-aware Schemathesis checks and the json protocol's media types.

Importing this module registers, once per process:

* ``aws_valid_accepted`` (our ``valid-accepted``): a request the model accepts may get a success
  or a business error (ResourceNotFound, Conflict, a semantic rejection), never a constraint
  validation error (``N validation errors detected``), a SerializationException or an
  UnknownOperationException;
* ``aws_invalid_rejected`` (``invalid-rejected``): a request that breaks the model gets the
  service's validation error (IoT's InvalidRequestException, ValidationException elsewhere, or
  SerializationException for an unreadable body), never a success and never another error;
* ``aws_error_contract`` (``error-declared``): an error names its code (``x-amzn-ErrorType`` and/or
  the body), both agree, the operation declares it (or it is one of AWS's common errors) and it
  comes with its declared HTTP status;
* ``aws_no_server_error`` (``no-5xx``): no 5xx, with the AWS error code in the report;
* a serializer alias and a deserializer for ``application/x-amz-json-1.0`` and ``-1.1``.

Whether a request is valid is decided by :func:`harness.fuzz._aws_wire.read_request` from the
bytes that were sent, not by Schemathesis's generation mode. The checks only act on documents
made by :func:`~harness.fuzz.openapi_document` (``info.x-aws-service``); for any other schema
they pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import schemathesis

from harness.fuzz._aws_wire import WireRequest, read_request
from harness.fuzz._openapi import COMMON_ERRORS
from harness.model import THROTTLING_CODES, format_issues, load_service

if TYPE_CHECKING:
    from schemathesis import Case, CheckContext, DeserializationContext, Response

    from harness.model import Operation, ServiceModel

__all__ = [
    "CHECK_NAMES",
    "AwsError",
    "aws_error_contract",
    "aws_invalid_rejected",
    "aws_no_server_error",
    "aws_valid_accepted",
    "read_error",
    "register_model",
    "wire_request",
]

#: Schemathesis check name -> our check name (``harness.fuzz.CHECKS``), where they correspond.
CHECK_NAMES: dict[str, str] = {
    "aws_valid_accepted": "valid-accepted",
    "aws_invalid_rejected": "invalid-rejected",
    "aws_error_contract": "error-declared",
    "aws_no_server_error": "no-5xx",
    "response_schema_conformance": "response-conforms",
    "content_type_conformance": "response-conforms",
    "response_headers_conformance": "response-conforms",
    "status_code_conformance": "response-conforms",
    "ensure_resource_availability": "read-after-create",
}
JSON_MEDIA_TYPES = ("application/x-amz-json-1.0", "application/x-amz-json-1.1")
# The error codes AWS services answer a broken constraint with.
_VALIDATION_CODES = frozenset(
    {
        "ValidationException",
        "InvalidRequestException",
        "BadRequestException",
        "InvalidParameterException",
        "InvalidParameterValueException",
    }
)
# How AWS (Coral) words a constraint rejection, as opposed to a semantic one.
_CONSTRAINT_MESSAGE = re.compile(r"\b\d+ validation errors? detected\b")
_MODELS: dict[str, ServiceModel] = {}


def register_model(model: ServiceModel) -> None:
    """Make the checks judge documents of ``model.name`` against ``model`` (default: pinned)."""
    _MODELS[model.name] = model


@dataclass(frozen=True, slots=True)
class AwsError:
    """What an error response says.

    :param code: the error code (``ResourceNotFoundException``), if it names one
    :param message: its message, if any
    :param problem: what breaks the AWS error envelope, if anything
    """

    code: str | None
    message: str | None
    problem: str | None = None


def _header(response: Response, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def read_error(protocol: str, response: Response) -> AwsError:
    """The code and message of an AWS error response, the way botocore finds them."""
    header = _header(response, "x-amzn-ErrorType")
    header_code = header.split(":", 1)[0] if header else None
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return AwsError(header_code, None, "the error body is not a JSON object")
    raw_type = body.get("__type") or body.get("code") or body.get("Code")
    body_code = str(raw_type).rsplit("#", 1)[-1].split(":", 1)[0] if raw_type else None
    message = body.get("message") or body.get("Message")
    text = str(message) if message is not None else None
    if header_code and body_code and header_code != body_code:
        problem = f"x-amzn-ErrorType says {header_code}, the body says {body_code}"
        return AwsError(body_code, text, problem)
    if protocol == "json" and body_code is None:
        # botocore's json parser reads only the body's __type.
        return AwsError(header_code, text, "the error body has no __type")
    code = body_code or header_code
    return AwsError(code, text, None if code else "the error names no code")


def _operation(case: Case[Any]) -> Operation | None:
    info = case.operation.schema.raw_schema.get("info", {})
    service = info.get("x-aws-service") if isinstance(info, dict) else None
    if not isinstance(service, str):
        return None  # not a document of ours: these checks have nothing to say
    model = _MODELS.get(service) or load_service(service)
    return model.operations.get(case.operation.definition.raw.get("operationId", ""))


def wire_request(op: Operation, response: Response) -> WireRequest | None:
    """The request behind ``response``, read as the service reads it."""
    request = response.request
    body: Any = request.body
    if isinstance(body, str):
        body = body.encode()
    if body is not None and not isinstance(body, bytes):
        return None  # a stream: not something our documents make
    return read_request(op, request.method or "GET", request.url or "", request.headers, body)


def _validation_codes(op: Operation) -> frozenset[str]:
    """The errors ``op`` may answer a broken constraint with: the validation errors it
    declares; if none, the service's (IoT's GetV2LoggingOptions declares none, and IoT answers
    InvalidRequestException); and SerializationException for a body it cannot read."""
    declared = {e.code for e in op.errors} & _VALIDATION_CODES
    if not declared:
        declared = {e.code for e in op.service.errors.values()} & _VALIDATION_CODES
    return frozenset(declared or {"ValidationException"}) | {"SerializationException"}


def _shorten(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@schemathesis.check
def aws_no_server_error(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """No 5xx answer, whatever the request."""
    op = _operation(case)
    if op is None or response.status_code < 500:
        return None
    error = read_error(op.service.protocol, response)
    raise AssertionError(
        f"server error {response.status_code} {error.code or '(no code)'}: {error.message or ''}"
    )


@schemathesis.check
def aws_error_contract(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Errors name a declared code, consistently, with the declared status."""
    op = _operation(case)
    if op is None or response.status_code < 400:
        return None
    # Coverage sends undeclared methods to a path, which may reach another operation (DELETE
    # /packages/x is DeletePackage): its errors are that operation's business, not this one's.
    if wire_request(op, response) is None:
        return None
    error = read_error(op.service.protocol, response)
    if error.problem is not None:
        raise AssertionError(f"malformed error response ({response.status_code}): {error.problem}")
    assert error.code is not None
    declared = op.error(error.code)
    if declared is None:
        if error.code not in COMMON_ERRORS and error.code not in _validation_codes(op):
            names = ", ".join(e.code for e in op.errors)
            raise AssertionError(
                f"{error.code} is not an error {op.name} declares ({names}) "
                f"nor a common AWS error: {error.message or ''}"
            )
    elif declared.status != response.status_code:
        raise AssertionError(
            f"{error.code} is declared with HTTP {declared.status}, "
            f"answered with {response.status_code}"
        )
    return None


@schemathesis.check
def aws_valid_accepted(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A request the model accepts is not rejected as malformed."""
    op = _operation(case)
    if op is None or not 400 <= response.status_code < 500:
        return None
    wire = wire_request(op, response)
    if wire is None or wire.issues:
        return None
    error = read_error(op.service.protocol, response)
    code = error.code or ""
    constraint = code in _VALIDATION_CODES and _CONSTRAINT_MESSAGE.search(error.message or "")
    if constraint or code in ("SerializationException", "UnknownOperationException"):
        raise AssertionError(
            f"a request the model accepts was rejected with {response.status_code} {code}: "
            f"{_shorten(error.message or '')}"
        )
    return None


@schemathesis.check
def aws_invalid_rejected(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A request that breaks the model is rejected with the service's validation error."""
    op = _operation(case)
    if op is None or response.status_code >= 500:
        return None
    wire = wire_request(op, response)
    if wire is None or not wire.issues:
        return None
    issues = _shorten(format_issues(list(wire.issues)))
    if response.status_code < 400:
        raise AssertionError(
            f"a request that breaks the model was accepted ({response.status_code}): {issues}"
        )
    code = read_error(op.service.protocol, response).code or "(no code)"
    expected = _validation_codes(op)
    if code not in expected and code not in THROTTLING_CODES:
        raise AssertionError(
            f"rejected with {code}, not the validation error ({' or '.join(sorted(expected))}): "
            f"{issues}"
        )
    return None


@schemathesis.deserializer(*JSON_MEDIA_TYPES)
def _amz_json(ctx: DeserializationContext, response: Response) -> Any:
    return orjson.loads(response.content)


schemathesis.serializer.alias(list(JSON_MEDIA_TYPES), "application/json")
