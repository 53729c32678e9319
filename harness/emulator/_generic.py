"""Generic behaviour for every operation without a service-specific handler.

The operation name gives the verb and the resource type (``CreateThingType`` creates a
``ThingType``; ``ListThingTypes`` lists them); the request's URI labels (or, for the json
protocol, its required name/id members) key the resource. Outputs are filled from the output
shape: members the request gave are echoed, ids and ARNs are generated, timestamps are now, and
other required members get valid example values derived from their constraints.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, NoReturn

from harness.emulator._state import Table
from harness.model import example_value

if TYPE_CHECKING:
    from harness.emulator._context import Context
    from harness.model import Operation, Shape

__all__ = ["GenericState", "fill", "generic_handler"]

_CREATE = ("Create", "Register", "Put", "Import")
_READ = ("Get", "Describe")
_UPDATE = ("Update",)
_DELETE = ("Delete", "Deregister")


class GenericState:
    """Resources of operations answered generically: one table per resource type."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: dict[str, Table[str, dict[str, Any]]] = {}

    def table(self, kind: str) -> Table[str, dict[str, Any]]:
        """The table of one resource type."""
        found = self.tables.get(kind)
        if found is None:
            found = self.tables[kind] = Table()
        return found

    def counts(self) -> dict[str, int]:
        """Resources per type."""
        return {kind: len(t) for kind, t in self.tables.items() if len(t)}

    def dump(self) -> dict[str, Any]:
        """The state as plain data (dicts, lists, tuples, scalars) for saving.

        Service states extend the result with their own resources; :meth:`restore` reads it
        back into a fresh instance. Rows are not copied: the caller serializes at once.
        """
        return {"tables": {kind: (t.layout(), list(t.values())) for kind, t in self.tables.items()}}

    def restore(self, data: dict[str, Any]) -> None:
        """Fill this fresh instance from what :meth:`dump` gave."""
        self.tables = {
            kind: Table.restored(layout, rows) for kind, (layout, rows) in data["tables"].items()
        }


def _split(name: str) -> tuple[str, str]:
    for verb in (*_CREATE, *_READ, *_UPDATE, *_DELETE, "List"):
        if name.startswith(verb) and len(name) > len(verb):
            return verb, name[len(verb) :]
    return "", name


def _singular(kind: str) -> str:
    if kind.endswith("ies"):
        return kind[:-3] + "y"
    if kind.endswith(("sses", "xes")):
        return kind[:-2]
    if kind.endswith("s") and not kind.endswith("ss"):
        return kind[:-1]
    return kind


def _key_members(op: Operation) -> list[str]:
    """The members that name the resource: URI labels; for a create without labels, the members
    its Get/Describe sibling takes as labels (CreateNotificationConfiguration's ``EventType`` is
    GetNotificationConfiguration's label); else required name/id members."""
    shape = op.input
    if shape is None:
        return []
    labels = [n for n, ref in shape.members.items() if ref.location == "uri"]
    if labels:
        return labels
    verb, kind = _split(op.name)
    if verb in _CREATE:
        for read in ("Get", "Describe"):
            sibling = op.service.operations.get(read + kind)
            if sibling is None or sibling.input is None:
                continue
            theirs = [n for n, r in sibling.input.members.items() if r.location == "uri"]
            if theirs and all(n in shape.members for n in theirs):
                return theirs
    return [
        n
        for n in sorted(shape.required)
        if n.lower().endswith(("name", "id", "arn", "identifier"))
        and shape.members[n].shape.type == "string"
    ][:1]


def _key(op: Operation, params: dict[str, Any]) -> str | None:
    members = _key_members(op)
    if not members or any(params.get(m) is None for m in members):
        return None
    return "/".join(str(params[m]) for m in members)


def fill(ctx: Context, shape: Shape, record: dict[str, Any], kind: str, key: str) -> dict[str, Any]:
    """An output structure for ``record``: echoed, generated or example values, all valid."""
    validator = ctx.model.validator
    out: dict[str, Any] = {}
    for name, ref in shape.members.items():
        target = ref.shape
        lowered = name.lower()
        value = _without_nulls(record.get(name))
        generated = False
        if value is None:
            generated = True
            if target.type == "timestamp" and (
                lowered.endswith(("date", "time", "at")) or "creat" in lowered or "modif" in lowered
            ):
                value = ctx.now
            elif target.type == "string" and lowered.endswith("arn"):
                value = ctx.arn(f"{kind[:1].lower()}{kind[1:]}/{key}")
            elif target.type == "string" and lowered.endswith("id"):
                value = key
            elif name in shape.required:
                value = example_value(target, required_only=True)
        if value is None:
            continue
        if validator.validate_shape(target, value):
            # What we echoed or generated does not fit this member: use a valid example for
            # required members and generated identifiers, drop other optional echoes.
            if name not in shape.required and not generated:
                continue
            value = example_value(target, required_only=True)
        out[name] = value
    return out


def _without_nulls(value: Any) -> Any:
    """An echoed value without JSON nulls inside (a request may carry them; outputs must not)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _fresh_key(ctx: Context, output: Shape) -> str:
    """A new id that every id member of the output admits (some forbid the dashes of a UUID)."""
    shapes = [
        ref.shape
        for name, ref in output.members.items()
        if ref.shape.type == "string" and name.lower().endswith("id")
    ]
    fresh = ctx.new_id()
    validator = ctx.model.validator
    for candidate in (fresh, fresh.replace("-", "")):
        if not any(validator.validate_shape(shape, candidate) for shape in shapes):
            return candidate
    # The seed makes the example differ per call, so two creates never share an id.
    return str(example_value(shapes[0], seed=uuid.uuid4().int >> 96, required_only=True))


def _not_found(ctx: Context, kind: str, key: str) -> NoReturn:
    error = next((e for e in ctx.operation.errors if e.name.endswith("NotFoundException")), None)
    if error is None:
        ctx.invalid(f"{kind} {key!r} does not exist")
    # Name the resource in the members the error shape has for it (Greengrass requires them).
    fields: dict[str, Any] = {}
    for name, member in error.shape.members.items():
        lowered = name.lower()
        if member.shape.type != "string":
            continue
        if lowered in ("resourceid", "resourcename", "resourcearn"):
            fields[name] = key
        elif lowered == "resourcetype":
            fields[name] = kind
    ctx.fail(error.name, f"{kind} {key!r} does not exist", **fields)


def generic_handler(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Answer ``ctx.operation`` by naming convention (see the module docstring)."""
    op = ctx.operation
    verb, kind = _split(op.name)
    output = op.output
    if output is None:
        return {}
    if verb == "List":
        return _list(ctx, params, _singular(kind), output)
    # Service states subclass GenericState so that their generic operations keep state too.
    tables = getattr(ctx.state, "table", None)
    table: Table[str, dict[str, Any]] = tables(kind) if tables is not None else Table()
    key = _key(op, params)
    if verb in _CREATE:
        if key is None:
            key = _fresh_key(ctx, output)
        record = dict(params)
        record["__key"] = key
        table.put(key, record)
        return fill(ctx, output, record, kind, key)
    if verb in _READ or verb in _UPDATE or verb in _DELETE:
        if key is None:
            return fill(ctx, output, params, kind, ctx.new_id())
        found = table.get(key)
        if found is None:
            _not_found(ctx, kind, key)
        record = found
        if verb in _UPDATE:
            record.update({k: v for k, v in params.items() if v is not None})
        elif verb in _DELETE:
            table.delete(key)
        return fill(ctx, output, record, kind, key)
    return fill(ctx, output, params, kind or op.name, key or ctx.new_id())


def _list(ctx: Context, params: dict[str, Any], kind: str, output: Shape) -> dict[str, Any]:
    paginator = ctx.operation.paginator
    result_key = (
        paginator.result_key[0]
        if paginator
        else next((n for n, ref in output.members.items() if ref.shape.type == "list"), None)
    )
    if result_key is None or result_key not in output.members:
        return fill(ctx, output, {}, kind, ctx.new_id())
    item = output.members[result_key].shape.member
    tables = getattr(ctx.state, "table", None)
    table: Table[str, dict[str, Any]] = tables(kind) if tables is not None else Table()
    rows, token = ctx.page(table, params)
    items: list[Any] = []
    if item is not None and item.shape.type == "structure":
        items = [fill(ctx, item.shape, row, kind, _row_key(row)) for row in rows]
    out = fill(ctx, output, {result_key: items}, kind, ctx.new_id())
    if items or not output.members[result_key].shape.min:
        out[result_key] = items
    else:
        out.pop(result_key, None)  # the shape forbids an empty list: say nothing instead
    if token and paginator:
        out[paginator.output_token[0]] = token
    return out


def _row_key(row: dict[str, Any]) -> str:
    return str(row.get("__key", ""))
