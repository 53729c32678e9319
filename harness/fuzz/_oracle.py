"""The oracle: named contract checks that judge one answer of the target.

Each function takes what was sent and what came back and returns the :class:`Finding` s of the
checks it judges (an empty list when the answer keeps the contract). The checks are named as
in :data:`~harness.fuzz.CHECKS`:

* ``valid-accepted``: a valid request gets a 2xx or a business error, never the model
  validation error, never a 5xx;
* ``invalid-rejected``: a request breaking one constraint gets a 4xx validation error;
* ``response-conforms``: a 2xx answer has the modeled status and its output matches its shape;
* ``error-declared``: an error is declared (or common to AWS), with its modeled status, and the
  header and the body name the same error type;
* ``no-5xx``: under any input.

``idempotent-replay`` and ``read-after-create`` need several calls; their judging lives with the
runner and the state machines, on top of :func:`ids_of` and :func:`conflict_codes`. What cannot
reach the target as drawn is never judged (:mod:`harness.fuzz._sendable`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from harness.fuzz._sendable import beyond_http_limits, unsendable
from harness.model import THROTTLING_CODES

if TYPE_CHECKING:
    from harness.fuzz._invalid import Breakage
    from harness.model import Operation
    from harness.transport import Reply

__all__ = [
    "COMMON_ERRORS",
    "CONFLICT_CODES",
    "Finding",
    "check_error",
    "check_invalid",
    "check_valid",
    "conflict_codes",
    "ids_of",
]

#: Errors any AWS operation may answer although its model does not declare them: request
#: validation and deserialization, authentication and authorization, throttling, routing.
COMMON_ERRORS = frozenset(
    {
        "ValidationException",
        "InvalidRequestException",
        "SerializationException",
        "UnknownOperationException",
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "NotAuthorized",
        "OptInRequired",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeoutException",
        *THROTTLING_CODES,
    }
)
#: The codes with which services refuse a request for its form rather than its meaning.
_VALIDATION_CODES = frozenset({"ValidationException", "InvalidRequestException"})
#: How AWS (Coral) and the emulator word a model validation failure: the form, not the meaning.
_MODEL_VALIDATION = re.compile(r"\d+ validation errors? detected", re.IGNORECASE)
#: How services answer a client token reused with other parameters.
CONFLICT_CODES = frozenset(
    {
        "ConflictException",
        "IdempotentParameterMismatch",
        "IdempotentParameterMismatchException",
        "ResourceAlreadyExistsException",
    }
)
_EXCERPT = 300


@dataclass(frozen=True, slots=True)
class Finding:
    """A check that an answer failed, and why."""

    check: str
    message: str


# ---------------------------------------------------------------------------- reading
def _bare(code: str) -> str:
    # "com.amazonaws.proton#ConflictException" and "Conflict:http://internal..." name the same
    # type as "ConflictException" / "Conflict": botocore strips both decorations too.
    return code.rsplit("#", 1)[-1].split(":", 1)[0].strip()


def _header(reply: Reply, name: str) -> str | None:
    lowered = name.lower()
    for key, value in reply.headers.items():
        if key.lower() == lowered:
            return value
    return None


def body_error_type(body: bytes | None) -> str | None:
    """The error type a JSON error body names (``__type``, else ``code``/``Code``), if any."""
    if not body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    for key in ("__type", "code", "Code"):
        value = doc.get(key)
        if isinstance(value, str) and value:
            return _bare(value)
    return None


def excerpt(reply: Reply) -> str:
    """The start of the answer's body, as text, for a violation report."""
    if reply.body is not None:
        return reply.body[:_EXCERPT].decode("utf-8", "replace")
    if reply.output is not None:
        return orjson.dumps(reply.output, default=str)[:_EXCERPT].decode("utf-8", "replace")
    return f"{reply.error_code}: {reply.error_message}"[:_EXCERPT]


def _validation_codes(op: Operation) -> frozenset[str]:
    """The codes with which ``op`` refuses a malformed request: the validation errors it
    declares (IoT: InvalidRequestException; most others: ValidationException), plus
    SerializationException, which services answer for a body they cannot deserialize."""
    declared = {ref.code for ref in op.errors if ref.code in _VALIDATION_CODES}
    return frozenset(declared or {"ValidationException"}) | {"SerializationException"}


def conflict_codes(op: Operation) -> frozenset[str]:
    """How ``op`` may answer a client token reused with other parameters: the conflict errors
    it declares (ConflictException, IdempotentParameterMismatch, ResourceAlreadyExists), else,
    declaring none, its validation error (an undeclared conflict would break error-declared)."""
    declared = frozenset(ref.code for ref in op.errors if ref.code in CONFLICT_CODES)
    return declared or _validation_codes(op) - {"SerializationException"}


def _answer(reply: Reply) -> str:
    return f"{reply.status} {reply.error_code or ''}".strip()


# ----------------------------------------------------------------------------- checks
def _no_5xx(reply: Reply) -> list[Finding]:
    # The messages name codes only: details (ids, URLs) go to the violation's body excerpt, so
    # that the fingerprint stays the same from run to run.
    if reply.status >= 500:
        return [Finding("no-5xx", f"answered {_answer(reply)}")]
    if reply.status == 0:
        return [Finding("no-5xx", f"no HTTP answer ({reply.error_code})")]
    return []


def _conforms(op: Operation, reply: Reply) -> list[Finding]:
    found: list[Finding] = []
    if reply.status != op.success_code:
        found.append(
            Finding(
                "response-conforms",
                f"success status {reply.status}, the model gives {op.success_code}",
            )
        )
    if op.output is not None:
        issues = op.service.validator.validate_shape(op.output, reply.output or {})
        if issues:
            listed = "; ".join(str(i) for i in issues[:5])
            found.append(Finding("response-conforms", f"output breaks its shape: {listed}"))
    return found


def check_error(op: Operation, reply: Reply) -> list[Finding]:
    """``error-declared`` for a 4xx answer (a 5xx, or no answer at all, is no-5xx's)."""
    if reply.ok or reply.status == 0 or reply.status >= 500:
        return []
    code = reply.error_code or ""
    found: list[Finding] = []
    ref = op.error(code)
    if ref is None and code not in COMMON_ERRORS:
        found.append(Finding("error-declared", f"{code or 'an error'} is not declared"))
    elif ref is not None and ref.status != reply.status:
        found.append(
            Finding(
                "error-declared",
                f"{code} came with status {reply.status}, the model gives {ref.status}",
            )
        )
    header = _header(reply, "x-amzn-ErrorType")
    in_body = body_error_type(reply.body)
    if header and in_body and _bare(header) != in_body:
        found.append(
            Finding(
                "error-declared",
                f"the header names {_bare(header)}, the body {in_body}",
            )
        )
    return found


def check_valid(op: Operation, reply: Reply) -> list[Finding]:
    """``valid-accepted``, ``response-conforms``, ``error-declared`` and ``no-5xx`` for the
    answer to a request the model accepts."""
    found = _no_5xx(reply)
    if reply.status >= 500 or reply.status == 0:
        found.append(Finding("valid-accepted", f"a valid request got {_answer(reply)}"))
        return found
    if reply.ok:
        return found + _conforms(op, reply)
    code = reply.error_code or ""
    refused = code in _VALIDATION_CODES and _MODEL_VALIDATION.search(reply.error_message)
    # Handlers may refuse a valid request for its meaning (an unknown parent, a bad combination),
    # in their own words; only the model's validation, or failing to read it, is a violation.
    if refused or code in ("SerializationException", "UnknownOperationException"):
        what = "the model's validation error" if refused else "a request it cannot read"
        found.append(Finding("valid-accepted", f"a valid request got {code} ({what})"))
    return found + check_error(op, reply)


def check_invalid(
    op: Operation, params: dict[str, Any], breakage: Breakage, reply: Reply
) -> list[Finding]:
    """``invalid-rejected``, ``error-declared`` and ``no-5xx`` for the answer to a request that
    breaks one constraint (``invalid-rejected`` only when the breakage can reach the wire)."""
    if beyond_http_limits(op, params) is not None:
        # The front end answers in its own words (or the client refuses to send, or the server
        # drops the connection: no answer at all); only a 5xx would still be wrong.
        return _no_5xx(reply) if reply.status else []
    found = _no_5xx(reply) + check_error(op, reply)
    if reply.status >= 500 or reply.status == 0 or unsendable(op, params, breakage):
        return found
    what = f"{breakage.constraint} at {breakage.path or 'the request'}"
    if reply.ok:
        found.append(Finding("invalid-rejected", f"accepted a request breaking {what}"))
    elif reply.error_code not in _validation_codes(op):
        found.append(
            Finding(
                "invalid-rejected",
                f"a request breaking {what} got {_answer(reply)}, not a validation error",
            )
        )
    return found


def ids_of(output: Any, prefix: str = "") -> dict[str, str]:
    """The identifiers in an output: every string member named ``*id``/``*arn`` (and version
    numbers), by path. A replayed create must answer with the same ones."""
    ids: dict[str, str] = {}
    if isinstance(output, dict):
        for key, value in output.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            lowered = str(key).lower()
            if isinstance(value, str) and lowered.endswith(("id", "arn", "version")):
                ids[path] = value
            elif isinstance(value, dict):
                ids.update(ids_of(value, path))
    return ids
