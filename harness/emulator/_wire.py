"""The two wire protocols of the seed services, read and written from the model.

* ``rest-json`` (IoT, Greengrass V2, IoT Wireless, managed integrations): URI labels, query
  string, headers and a JSON body, each member where its ``location`` trait puts it.
* ``json`` (Proton, awsJson1_0): ``POST /`` with ``X-Amz-Target``; the whole input is the body.

Converters compile once per shape. Most shapes need no conversion between the wire and the
API-level parameters (no renamed members, no blobs, no timestamps), and then the converter is the
identity and costs nothing.

Values from the URI, query string and headers are converted to the member's type when they can
be; when they cannot, the raw text is kept and the validator reports the type error with the
member's path, like AWS does.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from harness.model import Operation, ServiceModel, Shape

__all__ = ["OperationCodec", "WireError", "encode_error"]

_Convert = Callable[[Any], Any]


class WireError(Exception):
    """Raised when a request body cannot be read at all (answered as SerializationException)."""


def _identity(value: Any) -> Any:
    return value


# ----------------------------------------------------------------------------------- reading
def _reader(shape: Shape, cache: dict[str, _Convert | None]) -> _Convert | None:
    """A converter from JSON body values to API-level values, or ``None`` for the identity."""
    if shape.name in cache:
        return cache[shape.name]
    cache[shape.name] = None  # recursion guard: a recursive shape converts like its first level
    conv: _Convert | None = None
    if shape.type == "blob":
        conv = _read_blob
    elif shape.type == "structure":
        renames = {
            ref.wire_name: (name, _reader(ref.shape, cache))
            for name, ref in shape.members.items()
            if ref.location is None
        }
        if any(w != n or c is not None for w, (n, c) in renames.items()):

            def conv(value: Any) -> Any:
                if not isinstance(value, dict):
                    return value
                out = {}
                for key, item in value.items():
                    name, child = renames.get(key, (key, None))
                    out[name] = child(item) if child is not None and item is not None else item
                return out

    elif shape.type == "list" and shape.member is not None:
        item = _reader(shape.member.shape, cache)
        if item is not None:
            conv = lambda value: (  # noqa: E731 - closures keep the hot path lean
                [item(v) for v in value] if isinstance(value, list) else value
            )
    elif shape.type == "map" and shape.value is not None:
        val = _reader(shape.value.shape, cache)
        if val is not None:
            conv = lambda value: (  # noqa: E731
                {k: val(v) for k, v in value.items()} if isinstance(value, dict) else value
            )
    cache[shape.name] = conv
    return conv


def _read_blob(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{value[:40]!r} is not valid base64") from None


def _from_text(shape: Shape, text: str) -> Any:
    """A URI label, query or header value as the member's type (raw text when it is not)."""
    kind = shape.type
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
    except ValueError:
        return text
    if kind == "boolean":
        lowered = text.lower()
        return True if lowered == "true" else False if lowered == "false" else text
    if kind == "timestamp":
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return text
    if kind == "blob":
        return text.encode()
    return text


# ----------------------------------------------------------------------------------- writing
def _epoch(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    return value


def _iso(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return value


def _write_blob(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return value


def _writer(
    shape: Shape, fmt: str | None, cache: dict[tuple[str, str | None], _Convert | None]
) -> _Convert | None:
    """A converter from API-level output values to JSON values, or ``None`` for the identity."""
    key = (shape.name, fmt)
    if key in cache:
        return cache[key]
    cache[key] = None
    conv: _Convert | None = None
    if shape.type == "timestamp":
        conv = _iso if (fmt or shape.timestamp_format) == "iso8601" else _epoch
    elif shape.type == "blob":
        conv = _write_blob
    elif shape.type == "structure":
        members = {
            name: (ref.wire_name, _writer(ref.shape, ref.timestamp_format, cache))
            for name, ref in shape.members.items()
            if ref.location is None
        }
        if any(w != n or c is not None for n, (w, c) in members.items()):

            def conv(value: Any) -> Any:
                if not isinstance(value, dict):
                    return value
                out = {}
                for name, item in value.items():
                    if item is None:
                        continue
                    wire, child = members.get(name, (name, None))
                    out[wire] = child(item) if child is not None else item
                return out

    elif shape.type == "list" and shape.member is not None:
        item = _writer(shape.member.shape, shape.member.timestamp_format, cache)
        if item is not None:
            conv = lambda value: [item(v) for v in value]  # noqa: E731
    elif shape.type == "map" and shape.value is not None:
        val = _writer(shape.value.shape, shape.value.timestamp_format, cache)
        if val is not None:
            conv = lambda value: {k: val(v) for k, v in value.items()}  # noqa: E731
    cache[key] = conv
    return conv


def _header_text(shape: Shape, value: Any) -> str:
    if shape.type == "timestamp":
        if isinstance(value, int | float):
            value = datetime.fromtimestamp(value, UTC)
        if isinstance(value, datetime):
            return email.utils.format_datetime(value.astimezone(UTC), usegmt=True)
    if shape.type == "boolean":
        return "true" if value else "false"
    return str(value)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


class OperationCodec:
    """Reads one operation's requests and writes its responses, as its protocol says."""

    __slots__ = (
        "_body_members",
        "_body_reader",
        "_content_type",
        "_header_members",
        "_header_out",
        "_label_members",
        "_payload",
        "_protocol",
        "_query_members",
        "_status_member",
        "_writer",
        "operation",
        "stats_key",
    )

    def __init__(self, model: ServiceModel, operation: Operation) -> None:
        self.operation = operation
        #: ``service.Operation``: the key of the operation's counters, built once, not per request
        self.stats_key = f"{model.name}.{operation.name}"
        self._protocol = model.protocol
        self._content_type = (
            f"application/x-amz-json-{model.json_version}"
            if model.protocol == "json"
            else "application/json"
        )
        readers: dict[str, _Convert | None] = {}
        writers: dict[tuple[str, str | None], _Convert | None] = {}
        shape = operation.input
        self._label_members: list[tuple[str, str, Shape]] = []
        self._query_members: list[tuple[str, str, Shape]] = []
        self._header_members: list[tuple[str, str, Shape]] = []
        self._body_members = False
        self._payload: tuple[str, Shape] | None = None
        self._body_reader: _Convert | None = None
        if shape is not None:
            if model.protocol == "json":
                self._body_members = True
                self._body_reader = _reader(shape, readers)
            else:
                for name, ref in shape.members.items():
                    entry = (name, ref.wire_name, ref.shape)
                    if ref.location == "uri":
                        self._label_members.append(entry)
                    elif ref.location == "querystring":
                        self._query_members.append(entry)
                    elif ref.location == "header":
                        self._header_members.append(entry)
                    elif ref.location is None:
                        self._body_members = True
                if shape.payload:
                    self._payload = (shape.payload, shape.members[shape.payload].shape)
                elif self._body_members:
                    self._body_reader = _reader(shape, readers)
        out = operation.output
        self._header_out: list[tuple[str, str, Shape]] = []
        self._status_member: str | None = None
        self._writer: _Convert | None = None
        if out is not None:
            for name, ref in out.members.items():
                if ref.location == "header":
                    self._header_out.append((name, ref.wire_name, ref.shape))
                elif ref.location == "statusCode":
                    self._status_member = name
            self._writer = _writer(out, None, writers)

    def parse(
        self,
        labels: Mapping[str, str],
        query: Mapping[str, Any],
        getall: Callable[[str], list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        """The API-level parameters of a request.

        :param labels: URI labels (already percent-decoded)
        :param query: the query string, one value per key
        :param getall: every value of a query key (for list members)
        :param headers: the request headers (case-insensitive mapping)
        :param body: the raw body
        :raises WireError: when the body is not what the protocol requires
        """
        params: dict[str, Any] = {}
        if self._payload is not None:
            name, shape = self._payload
            if body:
                if shape.type == "blob":
                    params[name] = body
                elif shape.type == "string":
                    params[name] = body.decode(errors="replace")
                else:
                    params[name] = self._json_object(body)
        elif self._body_members and body:
            data = self._json_object(body)
            if self._body_reader is not None:
                data = self._body_reader(data)
            params.update(data)
        for name, wire, shape in self._label_members:
            if wire in labels:
                params[name] = _from_text(shape, labels[wire])
        for name, wire, shape in self._query_members:
            if wire not in query:
                continue
            if shape.type == "list" and shape.member is not None:
                item = shape.member.shape
                params[name] = [_from_text(item, v) for v in getall(wire)]
            else:
                params[name] = _from_text(shape, query[wire])
        for name, wire, shape in self._header_members:
            value = headers.get(wire)
            if value is not None:
                params[name] = _from_text(shape, value)
        return params

    @staticmethod
    def _json_object(body: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise WireError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise WireError(f"the request body must be a JSON object, not {type(data).__name__}")
        return data

    def serialize(self, output: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of a successful response."""
        status = self.operation.success_code
        headers = {"Content-Type": self._content_type}
        if self._header_out or self._status_member:
            body_part = dict(output)
            for name, wire, shape in self._header_out:
                value = body_part.pop(name, None)
                if value is not None:
                    headers[wire] = _header_text(shape, value)
            if self._status_member is not None:
                status = int(body_part.pop(self._status_member, status))
            output = body_part
        value = self._writer(output) if self._writer is not None else output
        return status, headers, _dumps(value)


def encode_error(
    model: ServiceModel,
    code: str,
    message: str,
    status: int,
    fields: Mapping[str, Any] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """An error response botocore maps to the modeled exception class.

    rest-json: ``x-amzn-ErrorType`` header and the message under the error shape's own key
    (``message`` or ``Message``). json: ``__type`` in the body with the full shape id (the json
    parser never reads the header). Members the error shape binds to headers (Greengrass's
    ``retryAfterSeconds`` -> ``Retry-After``) go to headers.
    """
    shape = model.shapes.get(code)
    message_key = "message"
    body: dict[str, Any] = {}
    headers: dict[str, str] = {"x-amzn-ErrorType": code}
    if shape is not None and shape.exception:
        for name, member in shape.members.items():
            if name.lower() == "message":
                message_key = member.wire_name
        for name, value in (fields or {}).items():
            ref = shape.members.get(name)
            if value is None:
                continue
            if ref is not None and ref.location == "header":
                headers[ref.wire_name] = _header_text(ref.shape, value)
            else:
                body[ref.wire_name if ref is not None else name] = value
    else:
        body.update(fields or {})
    body[message_key] = message
    if model.protocol == "json":
        headers["Content-Type"] = f"application/x-amz-json-{model.json_version}"
        namespace = (
            "com.amazon.coral.service" if shape is None else f"com.amazonaws.{model.signing_name}"
        )
        body["__type"] = f"{namespace}#{code}"
    else:
        headers["Content-Type"] = "application/json"
    return status, headers, _dumps(body)
