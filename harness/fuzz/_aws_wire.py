"""Read a request as it went over the wire, the way an AWS service reads it, and judge it.

The oracle of the Schemathesis checks: whether a request is valid is decided here, from the bytes
that were sent, by the model's own validator, never by the OpenAPI mutation that produced it.
That is what makes the checks AWS-aware:

* members the model does not know are ignored, as AWS services ignore them (a request that is
  invalid only because of an extra property is a valid request);
* a JSON ``null`` member is an unset member;
* URI labels, query values and headers are text, converted to the member's type as a Java service
  would (``"+5"`` is an integer, ``" 5"`` is not); what does not convert is a type error;
* a body that is not a JSON object, or a blob that is not base64, is unreadable.

This module shares no code with the emulator on purpose: it is the reference the emulator is
tested against.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from harness.model import ValidationIssue

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.model import Operation, Shape

__all__ = ["WireRequest", "read_request"]

_LABEL = re.compile(r"\{([^}]+)\}")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request as the service reads it.

    :param operation: the operation it reaches
    :param params: the API-level parameters (member names, typed values)
    :param issues: the constraints it breaks, unknown members excluded (empty: a valid request)
    """

    operation: Operation
    params: dict[str, Any]
    issues: tuple[ValidationIssue, ...]


class _Unreadable(Exception):
    """The body cannot be read at all (AWS answers SerializationException)."""


def _header(headers: Mapping[str, str | bytes], name: str) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _template(path: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    for i, match in enumerate(_LABEL.finditer(path)):
        parts.append(re.escape(path[pos : match.start()]))
        greedy = match.group(1).endswith("+")
        parts.append(f"(?P<g{i}>.+)" if greedy else f"(?P<g{i}>[^/]+)")
        pos = match.end()
    parts.append(re.escape(path[pos:]))
    return re.compile("".join(parts))


def _from_text(shape: Shape, text: str, where: str) -> Any:
    """A label, query or header value as the member's type; the raw text when it is not one."""
    kind = shape.type
    if kind in ("integer", "long"):
        return int(text) if _INTEGER.fullmatch(text) else text
    if kind in ("float", "double"):
        return float(text) if _NUMBER.fullmatch(text) else text
    if kind == "boolean":
        lowered = text.lower()
        return True if lowered == "true" else False if lowered == "false" else text
    if kind == "timestamp":
        if _NUMBER.fullmatch(text):
            return float(text)
        if where == "header":
            try:
                return email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return text
        return text  # the validator checks ISO 8601
    if kind == "blob":
        return text.encode()
    return text


def _body_value(shape: Shape, value: Any) -> Any:
    """A JSON value with wire names mapped to member names and blobs decoded."""
    if value is None:
        return None
    kind = shape.type
    if kind == "structure" and isinstance(value, dict):
        names = {ref.wire_name: name for name, ref in shape.members.items()}
        out = {}
        for key, item in value.items():
            name = names.get(key)
            if name is None:
                # Unknown: kept for the validator to name (and us to ignore), unless it would
                # pass for the member whose wire name differs (roleArn for RoleArn).
                if key not in shape.members:
                    out[key] = item
                continue
            out[name] = _body_value(shape.members[name].shape, item)
        return out
    if kind == "list" and isinstance(value, list) and shape.member is not None:
        return [_body_value(shape.member.shape, item) for item in value]
    if kind == "map" and isinstance(value, dict) and shape.value is not None:
        return {k: _body_value(shape.value.shape, v) for k, v in value.items()}
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _Unreadable(f"{value[:40]!r} is not base64") from None
    return value


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Unreadable(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Unreadable(f"the body is a JSON {type(data).__name__}, not an object")
    return data


def _read_body(op: Operation, body: bytes) -> dict[str, Any]:
    shape = op.input
    if shape is None:
        return {}
    if op.service.protocol == "json":
        value = _body_value(shape, _json_object(body)) if body else {}
        return dict(value)
    if shape.payload:
        ref = shape.members[shape.payload]
        if not body:
            return {}
        if ref.shape.type == "blob":
            return {shape.payload: body}
        if ref.shape.type == "string":
            return {shape.payload: body.decode(errors="replace")}
        return {shape.payload: _body_value(ref.shape, _json_object(body))}
    if not body:
        return {}
    data = _body_value(shape, _json_object(body))
    # Keys that name no body member are ignored, even those that name a URI or query member.
    return {
        name: value
        for name, value in data.items()
        if name in shape.members and shape.members[name].location is None
    }


def read_request(
    op: Operation,
    method: str,
    url: str,
    headers: Mapping[str, str | bytes],
    body: bytes | None,
) -> WireRequest | None:
    """Read a sent request as ``op`` would, or ``None`` when it does not reach ``op``.

    :param headers: case-insensitive (``requests``' headers are); bytes values are latin-1
    """
    parts = urlsplit(url)
    model = op.service
    labels: dict[str, str] = {}
    if model.protocol == "json":
        target = _header(headers, "X-Amz-Target") or parts.path.rsplit("/", 1)[-1]
        if method.upper() != "POST" or target != f"{model.target_prefix}.{op.name}":
            return None
    else:
        if method.upper() != op.http_method:
            return None
        match = _template(op.path_template).fullmatch(parts.path)
        if match is None:
            return None
        names = [name.rstrip("+") for name in _LABEL.findall(op.path_template)]
        labels = {name: unquote(match.group(f"g{i}")) for i, name in enumerate(names)}
    try:
        params = _read_body(op, body or b"")
    except _Unreadable as exc:
        issue = ValidationIssue("", "type", str(exc))
        return WireRequest(op, {}, (issue,))
    query = parse_qs(parts.query, keep_blank_values=True)
    shape = op.input
    for name, ref in (shape.members if shape is not None else {}).items():
        wire = ref.wire_name
        if ref.location == "uri" and wire in labels:
            params[name] = _from_text(ref.shape, labels[wire], "uri")
        elif ref.location == "querystring" and wire in query:
            values = query[wire]
            if ref.shape.type == "list" and ref.shape.member is not None:
                item = ref.shape.member.shape
                params[name] = [_from_text(item, v, "query") for v in values]
            else:
                params[name] = _from_text(ref.shape, values[0], "query")
        elif ref.location == "header" and (text := _header(headers, wire)) is not None:
            params[name] = _from_text(ref.shape, text, "header")
    issues = tuple(i for i in op.validate(params) if i.constraint != "unknown")
    return WireRequest(op, params, issues)
