"""JSON Schemas of model shapes, as they appear in a request or a response.

The shape half of :mod:`harness.fuzz._openapi`. Structures become ``components/schemas`` entries
(shapes may recurse), one per shape and direction: requests are closed (``additionalProperties:
false``) and carry every constraint; responses are open and keep only patterns that mean exactly
what the model says.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from harness.fuzz._openapi_patterns import portable_pattern

if TYPE_CHECKING:
    from collections.abc import Iterable

    from harness.model import Member, ServiceModel, Shape

__all__ = ["ShapeSchemas"]

_INT_RANGES = {"integer": (-(2**31), 2**31 - 1, "int32"), "long": (-(2**63), 2**63 - 1, "int64")}


class ShapeSchemas:
    """Builds the schemas of one service's shapes and collects their components."""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.components: dict[str, Any] = {}

    def schema(
        self, shape: Shape, *, request: bool, where: str = "body", fmt: str | None = None
    ) -> dict[str, Any]:
        """The JSON Schema of ``shape`` as it appears ``where`` (body, query, header or uri)."""
        kind = shape.type
        if kind == "structure":
            return self.component(shape, request=request)
        if kind == "document":
            return {}
        out: dict[str, Any]
        if kind == "string":
            out = {"type": "string"}
            self._string_constraints(shape, out, request=request)
            if where == "uri":
                # A URI label cannot be empty: the request would route to another operation.
                out["minLength"] = max(1, out.get("minLength", 1))
        elif kind in _INT_RANGES:
            lo, hi, fmt_name = _INT_RANGES[kind]
            out = {"type": "integer", "format": fmt_name}
            out["minimum"] = lo if shape.min is None else max(lo, math.ceil(shape.min))
            out["maximum"] = hi if shape.max is None else min(hi, math.floor(shape.max))
        elif kind in ("float", "double"):
            out = {"type": "number"}
            if shape.min is not None:
                out["minimum"] = shape.min
            if shape.max is not None:
                out["maximum"] = shape.max
        elif kind == "boolean":
            out = {"type": "boolean"}
        elif kind == "timestamp":
            out = self._timestamp(fmt or shape.timestamp_format, where)
        elif kind == "blob":
            # Base64 text; min/max bound the decoded bytes, so bound the encoded length.
            out = {"type": "string", "format": "byte"}
            if shape.min is not None:
                out["minLength"] = 4 * math.ceil(shape.min / 3)
            if shape.max is not None:
                out["maxLength"] = 4 * math.ceil(shape.max / 3)
        elif kind == "list":
            assert shape.member is not None
            item = shape.member
            out = {
                "type": "array",
                "items": self.schema(item.shape, request=request, fmt=item.timestamp_format),
            }
            self._bounds(shape, out, "minItems", "maxItems")
        else:  # map
            assert shape.key is not None and shape.value is not None
            value = shape.value
            out = {
                "type": "object",
                "additionalProperties": self.schema(
                    value.shape, request=request, fmt=value.timestamp_format
                ),
            }
            keys: dict[str, Any] = {"type": "string"}
            self._string_constraints(shape.key.shape, keys, request=request)
            if len(keys) > 1:
                out["propertyNames"] = keys
            self._bounds(shape, out, "minProperties", "maxProperties")
        return out

    def _string_constraints(self, shape: Shape, out: dict[str, Any], *, request: bool) -> None:
        self._bounds(shape, out, "minLength", "maxLength")
        if shape.enum:
            out["enum"] = list(shape.enum)
        if shape.pattern:
            portable = portable_pattern(shape.pattern)
            # An approximated pattern steers request generation; it must not judge responses.
            if portable.pattern is not None and (request or portable.exact):
                out["pattern"] = portable.pattern
            if not portable.exact:
                out["x-aws-pattern"] = shape.pattern

    @staticmethod
    def _bounds(shape: Shape, out: dict[str, Any], low: str, high: str) -> None:
        if shape.min is not None and shape.min > 0:
            out[low] = math.ceil(shape.min)
        if shape.max is not None:
            out[high] = math.floor(shape.max)

    @staticmethod
    def _timestamp(fmt: str | None, where: str) -> dict[str, Any]:
        # AWS's defaults: epoch seconds in JSON bodies, ISO 8601 in URIs and query strings,
        # HTTP-date in headers; a timestampFormat trait overrides them.
        fmt = fmt or {"body": "unixTimestamp", "header": "rfc822"}.get(where, "iso8601")
        if fmt == "iso8601":
            return {"type": "string", "format": "date-time"}
        if fmt == "rfc822":
            return {"type": "string", "description": "HTTP-date (RFC 7231)"}
        return {"type": "number", "description": "seconds since the epoch"}

    def component(self, shape: Shape, *, request: bool) -> dict[str, Any]:
        """A ``$ref`` to the structure's component, building it on first use."""
        # Shape names never contain dots, so the response variant's name cannot collide.
        name = shape.name if request else f"{shape.name}.Response"
        if name not in self.components:
            self.components[name] = {}  # placeholder first: recursive shapes refer to themselves
            # Members bound to headers (an error's Retry-After) are not in the JSON object.
            body = [ref for ref in shape.members.values() if ref.location is None]
            self.components[name] = self.structure(shape, body, request=request)
        return {"$ref": f"#/components/schemas/{name}"}

    def structure(
        self, shape: Shape, members: Iterable[Member], *, request: bool
    ) -> dict[str, Any]:
        """An object schema of ``members`` (the body members of ``shape``)."""
        members = list(members)
        out: dict[str, Any] = {
            "type": "object",
            "x-aws-shape": shape.name,
            "properties": {
                ref.wire_name: self.schema(ref.shape, request=request, fmt=ref.timestamp_format)
                for ref in members
            },
        }
        required = [ref.wire_name for ref in members if ref.name in shape.required]
        if required:
            out["required"] = required
        if request:
            out["additionalProperties"] = False
            if shape.union:
                out["minProperties"] = out["maxProperties"] = 1
        return out
