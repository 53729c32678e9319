"""The tagging operations for the resources a service keeps itself.

``ListTagsForResource``, ``TagResource`` and ``UntagResource`` take any ARN. A service module
registers, with :func:`tag_resolver`, a function that finds the resource an ARN names among the
ones it keeps (``None`` when the ARN is not of its types, so that another resolver, or in the end
the generic handler, answers). The resource keeps its tags as a ``dict`` in a ``tags`` attribute;
the model says how the wire carries them (a map, or a list of key/value structures whose member
names vary: ``Key``/``Value``, ``key``/``value``), which members name the ARN and the keys to
remove, how many tags a resource may have, and which error says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from harness.emulator._context import handler
from harness.emulator._generic import generic_handler

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from harness.emulator._context import Context
    from harness.model import Shape

__all__ = [
    "Resolver",
    "Taggable",
    "request_tags",
    "resource_by_arn",
    "tag_resolver",
    "tags_as",
    "tags_of",
]


class Taggable(Protocol):
    """A resource the tagging operations can serve: its ARN, and its tags in order."""

    arn: str
    tags: dict[str, str]


#: Finds the resource an ARN names, ``None`` when the ARN is not of the resolver's types.
Resolver: TypeAlias = "Callable[[Context, str], Taggable | None]"
_RESOLVERS: dict[str, list[Resolver]] = {}
#: Errors that say a resource has too many tags, in the order we prefer them.
_TOO_MANY = ("TooManyTagsException", "LimitExceededException")


def tags_of(shape: Shape, value: Any) -> dict[str, str]:
    """Tags of a request member of ``shape`` (a map, or a list of key/value structures)."""
    if shape.type == "map":
        return {str(k): str(v) for k, v in (value or {}).items()}
    key, val = _pair(shape)
    if key is None or val is None:
        return {}
    return {str(t[key]): str(t.get(val) or "") for t in value or () if isinstance(t, dict)}


def request_tags(ctx: Context, params: dict[str, Any]) -> dict[str, str]:
    """The tags a create request gives (its ``tags`` or ``Tags`` member), as a ``dict``."""
    shape = ctx.operation.input
    name = next((n for n in shape.members if n.lower() == "tags"), None) if shape else None
    if shape is None or name is None:
        return {}
    return tags_of(shape.members[name].shape, params.get(name))


def tags_as(shape: Shape, tags: Mapping[str, str]) -> Any:
    """``tags`` in the form of an output member of ``shape``."""
    if shape.type == "map":
        return dict(tags)
    key, val = _pair(shape)
    return [{key: k, val: v} for k, v in tags.items()]


def _pair(shape: Shape) -> tuple[str | None, str | None]:
    """The key and value member names of a list of tag structures."""
    item = shape.member.shape if shape.type == "list" and shape.member is not None else None
    if item is None or item.type != "structure":
        return None, None
    names = {name.lower(): name for name in item.members}
    return names.get("key"), names.get("value")


def resource_by_arn(
    ctx: Context, arn: str, prefix: str, lookup: Callable[[str], Taggable | None], kind: str
) -> Taggable | None:
    """The resource of type ``kind`` an ARN names, for a resolver.

    :param prefix: the resource part of the type's ARNs (``thinggroup/``); the rest of the ARN
        is what ``lookup`` takes
    :returns: ``None`` when the ARN is not of this type in this account and region
    :raises ApiError: the operation's not-found error when it is of this type but names nothing
    """
    start = ctx.arn(prefix)
    if not arn.startswith(start):
        return None
    found = lookup(arn[len(start) :])
    if found is None or found.arn != arn:
        _not_found(ctx, kind, arn)
    return found


def _not_found(ctx: Context, kind: str, arn: str) -> None:
    error = next(e for e in ctx.operation.errors if e.name == "ResourceNotFoundException")
    # Name the resource in the members the error shape has for it (IoT Wireless requires them).
    fields: dict[str, Any] = {}
    for name in error.shape.members:
        lowered = name.lower()
        if lowered in ("resourceid", "resourcename", "resourcearn"):
            fields[name] = arn
        elif lowered == "resourcetype":
            fields[name] = kind
    ctx.fail(error.name, f"{kind} {arn!r} does not exist", **fields)


def tag_resolver(service: str) -> Callable[[Resolver], Resolver]:
    """Register a resolver of ``service``'s taggable resources (the first one also registers
    the service's three tagging handlers)."""

    def register(fn: Resolver) -> Resolver:
        if service not in _RESOLVERS:
            _RESOLVERS[service] = []
            handler(service, "ListTagsForResource")(_list_tags)
            handler(service, "TagResource")(_tag)
            handler(service, "UntagResource")(_untag)
        _RESOLVERS[service].append(fn)
        return fn

    return register


def _member(shape: Shape | None, test: Callable[[str, Shape], bool]) -> str:
    assert shape is not None
    return next(name for name, ref in shape.members.items() if test(name, ref.shape))


def _arn_member(ctx: Context) -> str:
    return _member(
        ctx.operation.input, lambda n, s: n.lower().endswith("arn") and s.type == "string"
    )


def _tags_member(shape: Shape | None) -> str:
    return _member(shape, lambda n, _: n.lower() == "tags")


def _resolve(ctx: Context, params: dict[str, Any]) -> Taggable | None:
    arn = params[_arn_member(ctx)]
    for resolve in _RESOLVERS.get(ctx.model.name, ()):
        found = resolve(ctx, arn)
        if found is not None:
            return found
    return None


def _list_tags(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The resource's tags, all on one page (no member when there are none and the shape
    forbids an empty value)."""
    found = _resolve(ctx, params)
    if found is None:
        return generic_handler(ctx, params)
    output = ctx.operation.output
    assert output is not None
    name = _tags_member(output)
    shape = output.members[name].shape
    if not found.tags and (shape.min or 0) > 0:
        return {}
    return {name: tags_as(shape, found.tags)}


def _tag(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Add or overwrite tags, within the modeled maximum per resource."""
    found = _resolve(ctx, params)
    if found is None:
        return generic_handler(ctx, params)
    name = _tags_member(ctx.operation.input)
    assert ctx.operation.input is not None
    shape = ctx.operation.input.members[name].shape
    merged = {**found.tags, **tags_of(shape, params[name])}
    if shape.max is not None and len(merged) > shape.max:
        message = (
            f"a resource can have at most {int(shape.max)} tags, this request makes {len(merged)}"
        )
        declared = {e.name: e for e in ctx.operation.errors}
        code = next((c for c in _TOO_MANY if c in declared), None)
        if code is None:
            ctx.invalid(message)
        fields = {n: found.arn for n in declared[code].shape.members if n.lower() != "message"}
        ctx.fail(code, message, **fields)
    found.tags = merged
    return {}


def _untag(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Remove tags (keys the resource does not have are ignored, as AWS does)."""
    found = _resolve(ctx, params)
    if found is None:
        return generic_handler(ctx, params)
    keys = _member(ctx.operation.input, lambda n, s: n.lower() == "tagkeys")
    for key in params[keys]:
        found.tags.pop(key, None)
    return {}
