"""Shapes and members: a typed, linked view of a botocore ``service-2.json`` ``shapes`` section.

We build our own small objects instead of using ``botocore.model`` so that the validator, the
emulator and the fuzzers walk plain attributes (no lazy resolver on every access) and so that mypy
sees real types. Shapes may be recursive; members hold direct references to their target shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Member", "Shape", "ShapeType", "build_shapes"]

ShapeType = Literal[
    "structure",
    "list",
    "map",
    "string",
    "integer",
    "long",
    "float",
    "double",
    "boolean",
    "timestamp",
    "blob",
    "document",
]

_SCALAR_TYPES = frozenset(
    {"string", "integer", "long", "float", "double", "boolean", "timestamp", "blob"}
)


@dataclass(frozen=True, slots=True, eq=False)
class Member:
    """A reference from a structure, list or map to a shape, with its serialisation traits.

    :param name: the member name in API-level parameters (``thingName``)
    :param shape: the target shape
    :param location: ``uri``, ``querystring``, ``header``, ``headers`` or ``None`` for the body
    :param location_name: the wire name (JSON key, query key, header or URI label)
    """

    name: str
    shape: Shape
    location: str | None = None
    location_name: str | None = None
    idempotency_token: bool = False
    host_label: bool = False
    json_value: bool = False
    timestamp_format: str | None = None
    deprecated: bool = False

    @property
    def wire_name(self) -> str:
        """The name on the wire: ``locationName`` when the model gives one, else the member name."""
        return self.location_name or self.name


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """One named shape of a service model.

    Constraints keep botocore's meaning: for strings ``min``/``max`` bound the length in characters,
    for blobs in bytes, for lists and maps the number of entries, for numbers the value.
    """

    name: str
    type: ShapeType
    members: Mapping[str, Member] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    member: Member | None = None
    key: Member | None = None
    value: Member | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    union: bool = False
    sensitive: bool = False
    timestamp_format: str | None = None
    payload: str | None = None
    streaming: bool = False
    event_stream: bool = False
    exception: bool = False
    fault: bool = False
    error: Mapping[str, Any] = field(default_factory=dict)
    retryable: Mapping[str, Any] | None = None
    deprecated: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_scalar(self) -> bool:
        """True for strings, numbers, booleans, timestamps and blobs."""
        return self.type in _SCALAR_TYPES

    def __repr__(self) -> str:
        return f"<Shape {self.name} {self.type}>"


def _shape_type(name: str, raw: Mapping[str, Any]) -> ShapeType:
    kind = raw.get("type")
    if raw.get("document"):
        # Smithy documents appear as structures with ``document: true``; they hold any JSON.
        return "document"
    if kind not in _SCALAR_TYPES | {"structure", "list", "map"}:
        raise ModelError(f"shape {name!r} has unsupported type {kind!r}")
    return kind  # type: ignore[no-any-return]


def build_shapes(
    raw_shapes: Mapping[str, Mapping[str, Any]],
    pattern_overrides: Mapping[str, str | None] | None = None,
) -> dict[str, Shape]:
    """Build linked :class:`Shape` objects from the ``shapes`` section of a model.

    :param pattern_overrides: shape name -> the pattern to enforce instead (``None``: enforce none)
    :raises ModelError: when a shape has an unknown type or a member names a missing shape
    """
    overrides = pattern_overrides or {}
    shapes: dict[str, Shape] = {}
    for name, raw in raw_shapes.items():
        shapes[name] = Shape(
            name=name,
            type=_shape_type(name, raw),
            members={},  # filled below, once every shape exists (shapes can be recursive)
            required=frozenset(raw.get("required", ())),
            min=raw.get("min"),
            max=raw.get("max"),
            pattern=overrides[name] if name in overrides else raw.get("pattern"),
            enum=tuple(raw.get("enum", ())),
            union=bool(raw.get("union")),
            sensitive=bool(raw.get("sensitive")),
            timestamp_format=raw.get("timestampFormat"),
            payload=raw.get("payload"),
            streaming=bool(raw.get("streaming")),
            event_stream=bool(raw.get("eventstream")),
            exception=bool(raw.get("exception")),
            fault=bool(raw.get("fault")),
            error=raw.get("error", {}),
            retryable=raw.get("retryable"),
            deprecated=bool(raw.get("deprecated")),
            raw=raw,
        )

    def link(owner: str, name: str, ref: Mapping[str, Any]) -> Member:
        target = shapes.get(ref.get("shape", ""))
        if target is None:
            raise ModelError(f"shape {owner!r} member {name!r} refers to missing shape {ref!r}")
        return Member(
            name=name,
            shape=target,
            location=ref.get("location"),
            location_name=ref.get("locationName"),
            idempotency_token=bool(ref.get("idempotencyToken")),
            host_label=bool(ref.get("hostLabel")),
            json_value=bool(ref.get("jsonvalue")),
            timestamp_format=ref.get("timestampFormat"),
            deprecated=bool(ref.get("deprecated")),
        )

    for name, raw in raw_shapes.items():
        shape = shapes[name]
        if shape.type == "structure":
            members = shape.members
            assert isinstance(members, dict)
            for member_name, ref in raw.get("members", {}).items():
                members[member_name] = link(name, member_name, ref)
            # Freeze the mapping now that it is complete; the dataclass is frozen, so we go
            # through object.__setattr__ exactly once, here, while building.
            object.__setattr__(shape, "members", MappingProxyType(members))
        elif shape.type == "list":
            object.__setattr__(shape, "member", link(name, "member", raw["member"]))
        elif shape.type == "map":
            object.__setattr__(shape, "key", link(name, "key", raw["key"]))
            object.__setattr__(shape, "value", link(name, "value", raw["value"]))
    return shapes
