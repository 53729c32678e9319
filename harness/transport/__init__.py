"""The transport seam: every request the harness sends goes through a :class:`Transport`.

Implementations: :class:`AioBotocoreTransport` (real SDK clients, for AWS or any endpoint URL),
:class:`FastTransport` (the same requests and replies at a fraction of the CPU per call) and
:class:`MockTransport` (answers from a function, for tests). The engine never imports aiobotocore.
"""

from __future__ import annotations

from harness.transport._aiobotocore import AioBotocoreTransport
from harness.transport._fast import FastTransport
from harness.transport._mock import MockTransport
from harness.transport._probe import PROBE_TIMEOUT, probe_endpoint, sdk_session
from harness.transport._types import (
    Call,
    Reply,
    ReplyKind,
    Transport,
    classify,
    token_conflict,
)

__all__ = [
    "PROBE_TIMEOUT",
    "AioBotocoreTransport",
    "Call",
    "FastTransport",
    "MockTransport",
    "Reply",
    "ReplyKind",
    "Transport",
    "classify",
    "probe_endpoint",
    "sdk_session",
    "token_conflict",
]
