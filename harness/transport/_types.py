"""What goes through the transport seam: calls out, replies back, and how to read a reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from harness.model import THROTTLING_CODES

if TYPE_CHECKING:
    from harness.model import Operation

__all__ = ["DENIED_CODES", "Call", "Reply", "ReplyKind", "Transport", "classify", "token_conflict"]

#: How the engine should treat a reply: done, slow down and retry, retry, wait for an earlier
#: attempt (same client token) to finish and retry, give up, or give up and stop the run
#: (``denied``: the credentials or the caller's rights were refused, so every other call would
#: be refused too).
ReplyKind = Literal["ok", "throttled", "transient", "in_progress", "error", "denied"]

# botocore's standard mode treats these as transient, whatever the status (retries/standard.py).
_TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)

#: Credential and authorization errors: never retried, whatever the status (the AWS SDKs do not
#: retry them either; ``aws-facts.md``), plus botocore's client-side credential exceptions,
#: which the transports return as status-0 replies.
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "NotAuthorized",
        "SignatureDoesNotMatch",
        "UnauthorizedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "NoCredentialsError",
        "PartialCredentialsError",
        "NoAuthTokenError",
        "TokenRetrievalError",
        "CredentialRetrievalError",
        "UnauthorizedSSOTokenError",
        "SSOTokenLoadError",
    }
)


@dataclass(frozen=True, slots=True)
class Call:
    """One API call to make.

    :param service: botocore service name (``"iot"``)
    :param operation: API operation name (``"CreateThing"``)
    :param params: API-level parameters, as boto3 takes them
    :param region: the region, or ``None`` for the transport's default
    """

    service: str
    operation: str
    params: dict[str, Any]
    region: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back for one attempt of a call.

    ``status`` is the HTTP status, or 0 when no HTTP answer arrived (connection errors); then
    ``error_code`` names the exception. ``body`` holds the raw response body when the transport
    was asked to keep it (``AioBotocoreTransport(raw=True)``: the contract checks compare the
    error type of the header with the body's), else ``None``.
    """

    status: int
    output: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str = ""
    retry_after: float | None = None
    request_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300


def classify(reply: Reply, operation: Operation | None = None) -> ReplyKind:
    """Read a reply the way botocore's standard retry mode would, plus the modeled traits.

    Throttling: the throttling codes (status ignored) and errors the model marks
    ``retryable: {throttling: true}``. Transient: no HTTP answer, 5xx, and request timeouts.
    In progress: an error the model documents as "an earlier request with this client token is
    still being processed" (Greengrass's RequestAlreadyInProgressException).
    Denied: :data:`DENIED_CODES`, 401 and 403.
    """
    if reply.ok:
        return "ok"
    code = reply.error_code or ""
    # 401 and 403 are modeled only for authorization errors in these services.
    if code in DENIED_CODES or reply.status in (401, 403):
        return "denied"
    if code in THROTTLING_CODES or (reply.status == 429 and code in ("", "429")):
        return "throttled"
    if operation is not None:
        ref = operation.error(code) or operation.service.errors.get(code)
        if ref is not None and ref.throttling:
            return "throttled"
        if ref is not None and ref.in_progress:
            return "in_progress"
        if ref is not None and ref.retryable:
            return "transient"
    if reply.status == 0 or reply.status >= 500 or code in _TRANSIENT_CODES:
        return "transient"
    return "error"


def token_conflict(reply: Reply, operation: Operation) -> bool:
    """Whether ``reply`` is the conflict an operation with a client token answers for a token
    it has seen: a 409 the operation declares (ConflictException, ResourceAlreadyExists...), or
    an IdempotentParameterMismatch.

    On the first attempt it is a real conflict. On a retry that follows an attempt whose fate is
    unknown (no answer, a 5xx), with the same token and parameters, it is presumably that
    attempt, still in flight on the server: services without a dedicated "in progress" error
    (IoT Wireless) answer a reused token that way until the first request finishes.
    """
    if not operation.idempotency_members or reply.ok:
        return False
    code = reply.error_code or ""
    if code.startswith("IdempotentParameterMismatch"):
        return True
    ref = operation.error(code)
    return ref is not None and ref.status == 409 and reply.status == 409


class Transport(Protocol):
    """The one I/O seam: everything that talks to AWS or an emulator implements this."""

    #: Identifies the caller's account for per-account throttling (an access key or profile).
    identity: str
    #: The default region of calls that name none.
    region: str

    async def send(self, call: Call) -> Reply:
        """Make one attempt of ``call`` (no retries: those belong to the engine)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
