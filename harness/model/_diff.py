"""Compare two versions of a service model, the way an API changelog reads.

Changes are reported per operation and direction (request or response), with member paths such as
``deployments[].parentTargetArn`` (``[]`` walks into list items, ``{}`` into map values and
``{key}`` into map keys). A shape shared by several operations shows up under each of them, which
is what a caller of each operation needs to know.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from harness.model._service import Operation, ServiceModel
    from harness.model._shapes import Shape

__all__ = ["Change", "ModelDiff", "diff_models"]

_CONSTRAINTS = ("min", "max", "pattern")


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two models.

    :param kind: ``operation-added``, ``operation-removed``, ``http-changed``, ``member-added``,
        ``member-removed``, ``required-added``, ``required-removed``, ``type-changed``,
        ``constraint-changed``, ``enum-added``, ``enum-removed``, ``binding-changed``,
        ``error-added``, ``error-removed`` or ``error-status-changed``
    :param operation: the operation it concerns
    :param direction: ``request``, ``response`` or ``None`` (operation-level changes)
    :param path: the member path inside the request or response, or the error name
    """

    kind: str
    operation: str
    direction: str | None = None
    path: str = ""
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        where = f"{self.direction} " if self.direction else ""
        detail = {
            "operation-added": "operation added",
            "operation-removed": "operation removed",
            "member-added": f"+ {self.path}",
            "member-removed": f"- {self.path}",
            "required-added": f"{self.path} is now required",
            "required-removed": f"{self.path} is no longer required",
            "error-added": f"+ error {self.path}",
            "error-removed": f"- error {self.path}",
        }.get(self.kind)
        if detail is None:
            detail = f"{self.kind} {self.path}: {self.old!r} -> {self.new!r}"
        return f"{where}{detail}"


@dataclass(frozen=True, slots=True)
class ModelDiff:
    """All changes from ``old`` to ``new``; falsy when the models agree."""

    service: str
    old_source: str
    new_source: str
    changes: tuple[Change, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: service, sources and the list of changes."""
        return {
            "service": self.service,
            "old": self.old_source,
            "new": self.new_source,
            "changes": [asdict(c) for c in self.changes],
        }

    def to_text(self) -> str:
        """Changes grouped by operation, one per line, like a changelog."""
        lines = [f"{self.service}: {self.old_source} -> {self.new_source}"]
        if not self.changes:
            lines.append("  no changes")
        current = None
        for change in self.changes:
            if change.operation != current:
                current = change.operation
                lines.append(current)
            lines.append(f"  {change}")
        return "\n".join(lines)


def _walk(
    op: str, direction: str, old: Shape, new: Shape, path: str, seen: frozenset[tuple[str, str]]
) -> Iterator[Change]:
    key = (old.name, new.name)
    if key in seen:
        return  # a recursive shape: its changes were reported at the first level
    seen = seen | {key}
    if old.type != new.type:
        yield Change("type-changed", op, direction, path, old.type, new.type)
        return
    for attr in _CONSTRAINTS:
        a, b = getattr(old, attr), getattr(new, attr)
        if a != b:
            yield Change("constraint-changed", op, direction, f"{path}:{attr}", a, b)
    if old.enum != new.enum:
        added = [e for e in new.enum if e not in old.enum]
        removed = [e for e in old.enum if e not in new.enum]
        if added:
            yield Change("enum-added", op, direction, path, None, added)
        if removed:
            yield Change("enum-removed", op, direction, path, removed, None)
    if old.type == "structure":
        yield from _walk_structure(op, direction, old, new, path, seen)
    elif old.type == "list" and old.member and new.member:
        yield from _walk(op, direction, old.member.shape, new.member.shape, f"{path}[]", seen)
    elif old.type == "map" and old.key and new.key and old.value and new.value:
        yield from _walk(op, direction, old.key.shape, new.key.shape, f"{path}{{key}}", seen)
        yield from _walk(op, direction, old.value.shape, new.value.shape, f"{path}{{}}", seen)


def _walk_structure(
    op: str, direction: str, old: Shape, new: Shape, path: str, seen: frozenset[tuple[str, str]]
) -> Iterator[Change]:
    def sub(name: str) -> str:
        return f"{path}.{name}" if path else name

    for name in new.members:
        if name not in old.members:
            yield Change(
                "member-added", op, direction, sub(name), None, new.members[name].shape.name
            )
    for name in old.members:
        if name not in new.members:
            yield Change("member-removed", op, direction, sub(name), old.members[name].shape.name)
    for name in sorted(new.required - old.required):
        if name in old.members:
            yield Change("required-added", op, direction, sub(name))
    for name in sorted(old.required - new.required):
        if name in new.members:
            yield Change("required-removed", op, direction, sub(name))
    for name, old_ref in old.members.items():
        new_ref = new.members.get(name)
        if new_ref is None:
            continue
        binding_old = (old_ref.location, old_ref.location_name)
        binding_new = (new_ref.location, new_ref.location_name)
        if binding_old != binding_new:
            yield Change("binding-changed", op, direction, sub(name), binding_old, binding_new)
        yield from _walk(op, direction, old_ref.shape, new_ref.shape, sub(name), seen)


def _diff_operation(old: Operation, new: Operation) -> Iterator[Change]:
    op = new.name
    if (old.http_method, old.request_uri, old.success_code) != (
        new.http_method,
        new.request_uri,
        new.success_code,
    ):
        yield Change(
            "http-changed",
            op,
            None,
            "",
            f"{old.http_method} {old.request_uri} {old.success_code}",
            f"{new.http_method} {new.request_uri} {new.success_code}",
        )
    for direction, a, b in (
        ("request", old.input, new.input),
        ("response", old.output, new.output),
    ):
        if a is None and b is None:
            continue
        if a is None or b is None:
            yield Change("type-changed", op, direction, "", a and a.name, b and b.name)
            continue
        yield from _walk(op, direction, a, b, "", frozenset())
    old_errors = {e.name: e for e in old.errors}
    new_errors = {e.name: e for e in new.errors}
    for name in new_errors.keys() - old_errors.keys():
        yield Change("error-added", op, None, name, None, new_errors[name].status)
    for name in old_errors.keys() - new_errors.keys():
        yield Change("error-removed", op, None, name, old_errors[name].status, None)
    for name in old_errors.keys() & new_errors.keys():
        if old_errors[name].status != new_errors[name].status:
            yield Change(
                "error-status-changed",
                op,
                None,
                name,
                old_errors[name].status,
                new_errors[name].status,
            )


def diff_models(old: ServiceModel, new: ServiceModel) -> ModelDiff:
    """Every change from ``old`` to ``new``, sorted by operation name."""
    changes: list[Change] = []
    for name in sorted(old.operations.keys() | new.operations.keys()):
        if name not in old.operations:
            changes.append(Change("operation-added", name))
        elif name not in new.operations:
            changes.append(Change("operation-removed", name))
        else:
            changes.extend(_diff_operation(old.operations[name], new.operations[name]))
    return ModelDiff(new.name, old.source, new.source, tuple(changes))
