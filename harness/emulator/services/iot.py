"""IoT's thing registry: the state of every IoT handler, and the things.

The thing-group handlers are in :mod:`~harness.emulator.services.iot_groups` and the package
catalog in :mod:`~harness.emulator.services.iot_packages`; both keep their resources here.
Semantics beyond the model, all as AWS documents or answers them:

* CreateThing / CreateThingGroup are idempotent on name *and* configuration: the same request
  again answers 200 with the original ids; a different configuration answers
  ResourceAlreadyExistsException (409) naming the existing resource's id and ARN. The thing type
  and billing group a thing names must exist (ResourceNotFoundException); they are the rows the
  generic handlers keep for CreateThingType / CreateBillingGroup, which is why the state extends
  :class:`GenericState`.
* A thing has at most 3 attributes without a thing type and 50 with one; UpdateThing merges or
  replaces them per ``attributePayload.merge``, and an empty value removes an attribute.
* DeleteThing and DeleteThingGroup of something missing succeed; a group with child groups
  cannot be deleted (InvalidRequestException); ``expectedVersion`` mismatches answer
  VersionConflictException.
* A thing belongs to at most 10 groups. ListThingsInThingGroup(recursive=true) lists each thing
  of the group's subtree once, at its first group in pre-order.

Every exact lookup is a dict or :class:`Table` access, and every listing pages an index (things
by type, by attribute name, by attribute name and value; members per group; groups per thing;
children per group), so requests stay O(page) at a million things. Prefix filters scan the
narrowest index that applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from harness.emulator._context import handler, service_state
from harness.emulator._generic import GenericState
from harness.emulator._state import Table
from harness.emulator.services.iot_packages import PackageCatalog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from harness.emulator._context import Context

__all__ = [
    "Bucket",
    "IotState",
    "Thing",
    "ThingGroup",
    "bucket",
    "check_version",
    "payload_attributes",
    "present",
    "state_of",
    "thing_named",
    "updated_attributes",
]

V = TypeVar("V")

MAX_ATTRIBUTES_UNTYPED = 3
MAX_ATTRIBUTES_TYPED = 50
MAX_GROUPS_PER_THING = 10
MAX_GROUP_DEPTH = 7


@dataclass(slots=True, eq=False)
class Thing:
    """A registry thing."""

    name: str
    thing_id: str
    arn: str
    type_name: str | None
    attributes: dict[str, str]
    billing_group: str | None
    version: int = 1
    # Created on first membership: most things of a large fleet are in no group.
    groups: Table[str, ThingGroup] | None = None


@dataclass(slots=True, eq=False)
class ThingGroup:
    """A static thing group, its child groups and its member things."""

    name: str
    group_id: str
    arn: str
    parent: ThingGroup | None
    description: str | None
    attributes: dict[str, str]
    created: float
    version: int = 1
    children: Table[str, ThingGroup] = field(default_factory=Table)
    things: Table[str, Thing] = field(default_factory=Table)

    def lineage(self) -> list[ThingGroup]:
        """The ancestors, root first (at most the hierarchy depth, so cheap)."""
        chain: list[ThingGroup] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain[::-1]

    def subtree(self) -> Iterator[ThingGroup]:
        """This group and its descendants, in pre-order."""
        yield self
        for child in self.children.values():
            yield from child.subtree()


#: An index entry: the one thing with that key, or a table of them once there are several.
Bucket: TypeAlias = Thing | Table[str, Thing]


@service_state("iot")
class IotState(GenericState):
    """The IoT resources of one account and region (generic resources in ``tables``)."""

    __slots__ = ("by_attr", "by_attr_name", "by_type", "groups", "packages", "roots", "things")

    def __init__(self) -> None:
        super().__init__()
        self.things: Table[str, Thing] = Table()
        self.by_type: dict[str, Bucket] = {}
        self.by_attr_name: dict[str, Bucket] = {}
        self.by_attr: dict[tuple[str, str], Bucket] = {}
        self.groups: Table[str, ThingGroup] = Table()
        self.roots: Table[str, ThingGroup] = Table()
        self.packages = PackageCatalog()

    def counts(self) -> dict[str, int]:
        """Resources per type, generic ones included."""
        mine = {"Thing": len(self.things), "ThingGroup": len(self.groups), **self.packages.counts()}
        return {**super().counts(), **{kind: n for kind, n in mine.items() if n}}

    def dump(self) -> dict[str, Any]:
        """The state as plain data: things and groups name each other instead of nesting.

        Saving the objects themselves would follow thing -> group -> member thing -> its other
        group ... as deep as that chain goes, and cost several times more per object.
        """
        data = super().dump()
        data["groups"] = (
            self.groups.layout(),
            [
                (
                    *(g.name, g.group_id, g.arn, g.parent.name if g.parent is not None else None),
                    *(g.description, g.attributes, g.created, g.version),
                    *(g.children.layout(), g.things.layout()),
                )
                for g in self.groups.values()
            ],
        )
        data["roots"] = self.roots.layout()
        data["things"] = (
            self.things.layout(),
            [
                (
                    *(t.name, t.thing_id, t.arn, t.type_name, t.attributes, t.billing_group),
                    *(t.version, t.groups.layout() if t.groups is not None else None),
                )
                for t in self.things.values()
            ],
        )
        data["indexes"] = [
            {
                key: found.name if isinstance(found, Thing) else found.layout()
                for key, found in index.items()
            }
            for index in (self.by_type, self.by_attr_name, self.by_attr)
        ]
        data["packages"] = self.packages.dump()
        return data

    def restore(self, data: dict[str, Any]) -> None:
        """Fill this fresh instance from what :meth:`dump` gave."""
        super().restore(data)
        layout, group_rows = data["groups"]
        groups = [
            ThingGroup(name, group_id, arn, None, description, attributes, created, version)
            for name, group_id, arn, _, description, attributes, created, version, *_ in group_rows
        ]
        group_named = {group.name: group for group in groups}
        for group, row in zip(groups, group_rows, strict=True):
            group.parent = group_named[row[3]] if row[3] is not None else None
            group.children = _linked(row[8], group_named)
        self.groups = Table.restored(layout, groups)
        self.roots = _linked(data["roots"], group_named)
        layout, thing_rows = data["things"]
        things = [
            Thing(
                *(name, thing_id, arn, type_name, attributes, billing_group, version),
                _linked(memberships, group_named) if memberships is not None else None,
            )
            for name, thing_id, arn, type_name, attributes, billing_group, version, memberships in (
                thing_rows
            )
        ]
        self.things = Table.restored(layout, things)
        named = {thing.name: thing for thing in things}
        for group, row in zip(groups, group_rows, strict=True):
            group.things = _linked(row[9], named)
        self.by_type, self.by_attr_name, self.by_attr = (
            {
                key: named[found] if isinstance(found, str) else _linked(found, named)
                for key, found in index.items()
            }
            for index in data["indexes"]
        )
        self.packages = PackageCatalog()
        self.packages.restore(data["packages"])

    def reindex(
        self,
        thing: Thing,
        old: tuple[str | None, dict[str, str]],
        new: tuple[str | None, dict[str, str]],
    ) -> None:
        """Move ``thing`` in the indexes from its ``(type, attributes)`` ``old`` to ``new``.

        Only the entries that change move, so a thing keeps its place in listings a client is
        paging through while unrelated fields change.
        """
        (old_type, old_attrs), (new_type, new_attrs) = old, new
        name = thing.name
        if old_type != new_type:
            _drop(self.by_type, old_type, name)
            if new_type is not None:
                _add(self.by_type, new_type, thing)
        for key, value in old_attrs.items():
            if new_attrs.get(key) != value:
                _drop(self.by_attr, (key, value), name)
                if key not in new_attrs:
                    _drop(self.by_attr_name, key, name)
        for key, value in new_attrs.items():
            if old_attrs.get(key) != value:
                _add(self.by_attr, (key, value), thing)
                _add(self.by_attr_name, key, thing)


def _linked(layout: list[Any], named: Mapping[Any, V]) -> Table[Any, V]:
    """A table of ``layout`` whose rows are the objects ``named`` maps its keys to."""
    if None in layout:
        return Table.restored(layout, [named[key] for key in layout if key is not None])
    return Table.restored(layout, list(map(named.__getitem__, layout)))


def _add(index: dict[Any, Bucket], key: Any, thing: Thing) -> None:
    # A lone thing is stored as itself: unique values (serial numbers) are the common case,
    # and a one-row Table costs ~440 bytes more, i.e. ~440 MB for a million serials.
    found = index.get(key)
    if found is None:
        index[key] = thing
    elif isinstance(found, Thing):
        if found is not thing:
            table: Table[str, Thing] = Table()
            table.put(found.name, found)  # keeps position 0, the one it had alone
            table.put(thing.name, thing)
            index[key] = table
    else:
        found.put(thing.name, thing)


def _drop(index: dict[Any, Bucket], key: Any, name: str) -> None:
    # Empty buckets go, or values no thing has any more would leak.
    found = index.get(key)
    if isinstance(found, Thing):
        if found.name == name:
            del index[key]
    elif found is not None:
        found.delete(name)
        if not len(found):
            del index[key]


def bucket(index: dict[Any, Bucket], key: Any) -> Table[str, Thing]:
    """The things indexed under ``key``, as a table to page."""
    found = index.get(key)
    table: Table[str, Thing] = found if isinstance(found, Table) else Table()
    if isinstance(found, Thing):
        table.put(found.name, found)
    return table


def state_of(ctx: Context) -> IotState:
    """The IoT state of the request's account and region."""
    state: IotState = ctx.state
    return state


def present(**members: Any) -> dict[str, Any]:
    """An output without the members that have no value (AWS omits them)."""
    return {k: v for k, v in members.items() if v is not None}


def thing_named(ctx: Context, name: str) -> Thing:
    """The thing called ``name``.

    :raises ApiError: ResourceNotFoundException when there is none
    """
    thing = state_of(ctx).things.get(name)
    if thing is None:
        ctx.fail("ResourceNotFoundException", f"Thing {name} does not exist")
    return thing


def check_version(ctx: Context, params: dict[str, Any], version: int, what: str) -> None:
    """Refuse the request when its ``expectedVersion`` is not ``version``.

    :raises ApiError: VersionConflictException
    """
    expected = params.get("expectedVersion")
    if expected is not None and expected != version:
        ctx.fail("VersionConflictException", f"{what} is at version {version}, not {expected}")


def _check_refs(ctx: Context, type_name: str | None, billing_group: str | None) -> None:
    # Thing types and billing groups live in the generic handlers' tables, keyed by name.
    state = state_of(ctx)
    if type_name is not None and type_name not in state.table("ThingType"):
        ctx.fail("ResourceNotFoundException", f"Thing type {type_name} does not exist")
    if billing_group is not None and billing_group not in state.table("BillingGroup"):
        ctx.fail("ResourceNotFoundException", f"Billing group {billing_group} does not exist")


def _check_attribute_count(ctx: Context, attributes: dict[str, str], typed: bool) -> None:
    limit = MAX_ATTRIBUTES_TYPED if typed else MAX_ATTRIBUTES_UNTYPED
    if len(attributes) > limit:
        kind = "with" if typed else "without"
        ctx.invalid(f"A thing {kind} a thing type has at most {limit} attributes")


def payload_attributes(payload: dict[str, Any] | None) -> dict[str, str]:
    """The attributes of a creation's ``attributePayload`` (``merge`` means nothing there)."""
    return dict((payload or {}).get("attributes") or {})


def updated_attributes(current: dict[str, str], payload: dict[str, Any] | None) -> dict[str, str]:
    """The attributes after an update's ``attributePayload``.

    Without ``attributes`` nothing changes; ``merge`` keeps the attributes the payload does not
    name, else they are replaced; an empty value removes an attribute, as in AWS.
    """
    if payload is None or payload.get("attributes") is None:
        return current
    merged = dict(current) if payload.get("merge") else {}
    merged.update(payload["attributes"])
    return {k: v for k, v in merged.items() if v != ""}


# ------------------------------------------------------------------------------------ things
@handler("iot", "CreateThing")
def create_thing(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create a thing, or answer the existing one when the configuration is the same."""
    state = state_of(ctx)
    name = params["thingName"]
    type_name, billing = params.get("thingTypeName"), params.get("billingGroupName")
    attributes = payload_attributes(params.get("attributePayload"))
    thing = state.things.get(name)
    if thing is not None:
        if (thing.type_name, thing.attributes, thing.billing_group) != (
            type_name,
            attributes,
            billing,
        ):
            ctx.fail(
                "ResourceAlreadyExistsException",
                f"Thing {name} already exists with a different configuration",
                resourceId=thing.thing_id,
                resourceArn=thing.arn,
            )
        return {"thingName": name, "thingArn": thing.arn, "thingId": thing.thing_id}
    _check_refs(ctx, type_name, billing)
    _check_attribute_count(ctx, attributes, type_name is not None)
    thing = Thing(name, ctx.new_id(), ctx.arn(f"thing/{name}"), type_name, attributes, billing)
    state.things.put(name, thing)
    state.reindex(thing, (None, {}), (type_name, attributes))
    return {"thingName": name, "thingArn": thing.arn, "thingId": thing.thing_id}


@handler("iot", "DescribeThing")
def describe_thing(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Describe a thing; its default client id is its name, as AWS answers."""
    thing = thing_named(ctx, params["thingName"])
    return present(
        defaultClientId=thing.name,
        thingName=thing.name,
        thingId=thing.thing_id,
        thingArn=thing.arn,
        thingTypeName=thing.type_name,
        attributes=thing.attributes,
        version=thing.version,
        billingGroupName=thing.billing_group,
    )


@handler("iot", "UpdateThing")
def update_thing(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Change a thing's type and attributes; every update bumps its version."""
    state = state_of(ctx)
    thing = thing_named(ctx, params["thingName"])
    check_version(ctx, params, thing.version, f"Thing {thing.name}")
    type_name = params.get("thingTypeName")
    if type_name is not None and params.get("removeThingType"):
        ctx.invalid("thingTypeName and removeThingType=true cannot be used together")
    _check_refs(ctx, type_name, None)
    new_type = None if params.get("removeThingType") else type_name or thing.type_name
    attributes = updated_attributes(thing.attributes, params.get("attributePayload"))
    _check_attribute_count(ctx, attributes, new_type is not None)
    state.reindex(thing, (thing.type_name, thing.attributes), (new_type, attributes))
    thing.type_name, thing.attributes = new_type, attributes
    thing.version += 1
    return {}


@handler("iot", "DeleteThing")
def delete_thing(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a thing and its group memberships (a missing thing is already deleted)."""
    state = state_of(ctx)
    thing = state.things.get(params["thingName"])
    if thing is None:
        return {}
    check_version(ctx, params, thing.version, f"Thing {thing.name}")
    for group in thing.groups.values() if thing.groups is not None else ():
        group.things.delete(thing.name)
    state.reindex(thing, (thing.type_name, thing.attributes), (None, {}))
    state.things.delete(thing.name)
    return {}


@handler("iot", "ListThings")
def list_things(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of things, filtered by attribute (exact or prefix) and thing type.

    An exact attribute filter pages the (name, value) index; a prefix filter scans the things
    that have the attribute; a type filter alone pages the type index.
    """
    state = state_of(ctx)
    attr, value = params.get("attributeName"), params.get("attributeValue")
    type_name = params.get("thingTypeName")
    if value is not None and attr is None:
        ctx.invalid("attributeValue requires attributeName")
    checks: list[Callable[[Thing], bool]] = []
    if attr is not None and value is not None and not params.get("usePrefixAttributeValue"):
        table = bucket(state.by_attr, (attr, value))
    elif attr is not None:
        table = bucket(state.by_attr_name, attr)
        prefix = value or ""
        checks.append(lambda t: t.attributes[attr].startswith(prefix))
    elif type_name is not None:
        table = bucket(state.by_type, type_name)
    else:
        table = state.things
    if type_name is not None and attr is not None:
        checks.append(lambda t: t.type_name == type_name)
    keep = (lambda t: all(check(t) for check in checks)) if checks else None
    things, token = ctx.page(table, params, keep)
    items = [
        present(
            thingName=t.name,
            thingTypeName=t.type_name,
            thingArn=t.arn,
            attributes=t.attributes,
            version=t.version,
        )
        for t in things
    ]
    return present(things=items, nextToken=token)
