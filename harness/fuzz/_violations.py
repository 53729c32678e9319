"""Contract violations: what a check found, with enough to reproduce it and to baseline it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["CHECKS", "Violation", "boto3_snippet"]

#: The named checks of the oracle, in report order.
CHECKS: tuple[str, ...] = (
    "valid-accepted",
    "invalid-rejected",
    "response-conforms",
    "error-declared",
    "idempotent-replay",
    "read-after-create",
    "no-5xx",
)

# Parts of messages that change from run to run (ids, tokens, numbers, ARNs) and must not
# change a violation's fingerprint.
_VOLATILE = re.compile(
    r"arn:[^\s'\"]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+|'[^']*'"
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One answer that breaks the contract.

    :param check: the named check (one of :data:`CHECKS`, or a Schemathesis check name)
    :param operation: ``service.Operation``
    :param message: what is wrong, in words
    :param params: the (shrunk) request parameters that reproduce it
    :param status: the HTTP status of the answer (0: none)
    :param error_code: the error code of the answer, if any
    :param body: an excerpt of the answer body
    :param snippet: a runnable boto3 snippet that sends the same request
    """

    check: str
    operation: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    error_code: str | None = None
    body: str = ""
    snippet: str = ""

    @property
    def fingerprint(self) -> str:
        """A stable id for baselines: the check, the operation, the error code and the message
        with its volatile parts (ids, numbers, quoted values) masked."""
        shape = _VOLATILE.sub("*", self.message)
        text = f"{self.check}|{self.operation}|{self.error_code or ''}|{shape}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields, fingerprint included."""
        return {
            "fingerprint": self.fingerprint,
            "check": self.check,
            "operation": self.operation,
            "message": self.message,
            "params": self.params,
            "status": self.status,
            "error_code": self.error_code,
            "body": self.body,
            "snippet": self.snippet,
        }


def boto3_snippet(
    service: str,
    python_name: str,
    params: dict[str, Any],
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> str:
    """Runnable Python that sends the same request with boto3 (client-side validation off, so that
    invalid requests reach the target as they did)."""
    args = orjson.dumps(params, option=orjson.OPT_INDENT_2, default=repr).decode()
    endpoint = f", endpoint_url={endpoint_url!r}" if endpoint_url else ""
    return (
        "import boto3, json\n"
        "from botocore.config import Config\n"
        f"client = boto3.client({service!r}, region_name={region!r}{endpoint},\n"
        "                      config=Config(parameter_validation=False,"
        " retries={'total_max_attempts': 1}))\n"
        f"params = json.loads('''{args}''')\n"
        f"print(client.{python_name}(**params))\n"
    )
