"""What can reach the target as it was drawn: HTTP's limits and botocore's serialization.

A request the model calls invalid is not always invalid on the wire: URI labels, query values and
headers travel as text, botocore drops unknown members and fills in missing idempotency tokens,
an empty URI label is another path, and HTTP front ends refuse request lines and headers past a
few kilobytes before any service reads them. The oracle judges ``invalid-rejected`` only for
breakages that arrive as broken (:func:`unsendable`), and sends valid requests only when HTTP can
carry them (:func:`beyond_http_limits`), so that it never reports what the target never saw.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from harness.fuzz._invalid import Breakage
    from harness.model import Operation, Shape

__all__ = ["beyond_http_limits", "resolve_path", "unsendable", "value_at"]

#: Longest URI label, query value or header value we expect a front end to pass on: HTTP servers
#: (AWS's, aiohttp's) refuse request lines and header fields of about 8 KB with their own 4xx
#: before any service sees the request.
_MAX_TEXT = 4096
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_PATH_TOKEN = re.compile(r"\.?([^.\[]+)|\[")


def resolve_path(op: Operation, path: str) -> tuple[str | None, Shape | None]:
    """Where a validator path lands: the wire location of its top member and its shape.

    Paths read ``a.b[0].c`` and ``tags["key"]`` (list indexes and map keys as JSON); a path
    through a member the shape lacks (an ``unknown`` breakage) has the shape ``None``.
    """
    shape: Shape | None = op.input
    location: str | None = None
    pos, top = 0, True
    while pos < len(path) and shape is not None:
        match = _PATH_TOKEN.match(path, pos)
        if match is None:
            return location, None
        if match.group(0) == "[":
            _, pos = json.JSONDecoder().raw_decode(path, pos + 1)
            pos += 1
            ref = shape.member if shape.type == "list" else shape.value
        else:
            pos = match.end()
            ref = shape.members.get(match.group(1)) if shape.type == "structure" else None
            if ref is not None and top:
                location = ref.location
        top = False
        shape = ref.shape if ref is not None else None
    return location, shape


def value_at(params: dict[str, Any], path: str) -> Any:
    """The value at a validator path (``None`` when absent)."""
    node: Any = params
    pos = 0
    while pos < len(path) and node is not None:
        match = _PATH_TOKEN.match(path, pos)
        if match is None:
            return None
        key: Any
        if match.group(0) == "[":
            key, pos = json.JSONDecoder().raw_decode(path, pos + 1)
            pos += 1
        else:
            key, pos = match.group(1), match.end()
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            node = None
    return node


def beyond_http_limits(op: Operation, params: dict[str, Any]) -> str | None:
    """Why ``params`` cannot travel as one HTTP request to a service, or ``None``.

    An empty URI label makes another path (botocore's validator refuses it: "all URI labels
    must have a min length of 1", whatever the model says), and a request line (labels and query
    values) or a header longer than :data:`_MAX_TEXT` is refused by the HTTP front end, not by
    the service.
    """
    if op.input is None:
        return None
    line = 0
    for name, ref in op.input.members.items():
        value = params.get(name)
        if ref.location == "uri" and value == "":
            return f"the URI label {name} is empty: the request goes to another path"
        if ref.location not in ("uri", "querystring", "header") or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if not items and name in op.input.required:
            return f"the {ref.location} list {name} is empty: on the wire it is missing"
        texts = [v if isinstance(v, str) else str(v) for v in items]
        if ref.location == "header" and any(not _PRINTABLE.fullmatch(t) for t in texts):
            # aiohttp refuses control characters in headers, and only printable ASCII is
            # carried the same way by every client and server.
            return f"the header {name} holds characters HTTP headers do not carry"
        # Measured as sent: percent-encoding can triple a value's length.
        size = sum(len(quote(t, safe="")) for t in texts)
        if ref.location == "header" and size > _MAX_TEXT:
            return f"the header {name} is beyond what HTTP front ends accept"
        line += size if ref.location != "header" else 0
    if line > _MAX_TEXT:
        return "the request line is beyond what HTTP front ends accept"
    return None


def unsendable(op: Operation, params: dict[str, Any], breakage: Breakage) -> str | None:
    """Why a broken request cannot reach the target as broken, or ``None`` when it can.

    HTTP carries URI labels, query parameters and headers as text, and botocore serializes only
    modeled members, so some single broken constraints do not survive the trip; the target then
    sees a valid request (or another operation's) and may rightly accept it.
    """
    location, shape = resolve_path(op, breakage.path)
    value = value_at(params, breakage.path)
    limits = beyond_http_limits(op, params)
    if limits is not None:
        return limits
    if breakage.constraint == "unknown":
        return "botocore sends modeled members only (and AWS ignores others)"
    if breakage.constraint == "required" and breakage.path in op.idempotency_members:
        return "botocore fills in a missing idempotency token"
    if breakage.constraint == "type" and shape is not None and shape.type == "timestamp":
        if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            return "botocore sends any number (and a boolean) as epoch seconds"
    if location in ("uri", "querystring", "header") and breakage.constraint == "type":
        return f"a {location} value is text: the wrong type arrives as text its type may parse"
    if location == "uri" and (breakage.constraint in ("required", "min") or value == ""):
        return "an absent or empty URI label is another path (another operation or none)"
    if location == "querystring" and value == []:
        return "an empty list is no query parameter at all"
    if breakage.constraint == "type" and shape is not None and shape.type == "list":
        if isinstance(value, str | dict):
            return "botocore iterates a string or dict given for a list into a valid list"
    if isinstance(value, float) and not math.isfinite(value):
        return "JSON has no infinities"
    return None
