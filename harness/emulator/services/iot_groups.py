"""IoT's static thing groups: the hierarchy and the things in each group.

The state lives in :mod:`harness.emulator.services.iot`; see its docstring for the semantics
shared with things. Specific to groups:

* ``parentGroupName`` must name an existing group; CreateThingGroup declares no not-found
  error, so a missing parent is an InvalidRequestException, as is a hierarchy deeper than 7.
* Idempotent creation compares the parent and the properties (description and attributes);
  tags are not configuration and are not compared.
* ListThingGroups is recursive unless ``recursive=false``: without ``parentGroup`` it lists every
  group (only the root groups when not recursive), with it the descendants (only the children).
* Membership calls name things and groups by name or ARN; whichever does not exist answers
  ResourceNotFoundException. Adding twice keeps one membership; removing a non-member succeeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.emulator._context import handler
from harness.emulator._state import Page, Table
from harness.emulator._tagging import request_tags, resource_by_arn, tag_resolver
from harness.emulator.services.iot import (
    MAX_GROUP_DEPTH,
    MAX_GROUPS_PER_THING,
    Thing,
    ThingGroup,
    check_version,
    payload_attributes,
    present,
    state_of,
    thing_named,
    updated_attributes,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.emulator._context import Context
    from harness.emulator._tagging import Taggable

__all__: list[str] = []

# A position in a subtree listing: group index * _STRIDE + position in that group's table.
_STRIDE = 1 << 40


class _SubtreeThings(Table[str, Thing]):
    """The things of a group's subtree, each once, as one listing :meth:`Context.page` can page.

    ``Context.page`` takes a :class:`Table`, so this view is one, though only :meth:`page` means
    anything: it walks the member tables of the subtree's groups in pre-order and keeps a thing
    only at the first group (in that order) it belongs to. That test looks at the thing's own
    memberships (at most 10), so a page costs O(page) however many things the groups hold, plus
    O(groups in the subtree) to build the view.
    """

    __slots__ = ("_groups", "_rank")

    def __init__(self, root: ThingGroup) -> None:
        super().__init__()
        self._groups = list(root.subtree())
        self._rank = {group.name: i for i, group in enumerate(self._groups)}

    def _first(self, thing: Thing) -> int:
        rank = self._rank
        groups = thing.groups.values() if thing.groups is not None else ()
        return min((rank[g.name] for g in groups if g.name in rank), default=-1)

    def page(
        self, start: int, limit: int, keep: Callable[[Thing], bool] | None = None
    ) -> Page[Thing]:
        """Up to ``limit`` things from the composite position ``start`` on."""
        index, pos = divmod(max(start, 0), _STRIDE)
        items: list[Thing] = []
        while index < len(self._groups):

            def first_here(thing: Thing, here: int = index) -> bool:
                return self._first(thing) == here and (keep is None or keep(thing))

            got = self._groups[index].things.page(pos, limit - len(items), first_here)
            items.extend(got.items)
            if got.next_position is not None:
                return Page(items, index * _STRIDE + got.next_position)
            index, pos = index + 1, 0
        return Page(items, None)


def _group(ctx: Context, name: str) -> ThingGroup:
    group = state_of(ctx).groups.get(name)
    if group is None:
        ctx.fail("ResourceNotFoundException", f"Thing group {name} does not exist")
    return group


def _resolve(ctx: Context, table: Table[str, Any], kind: str, name: Any, arn: Any) -> Any:
    """The row of ``table`` named by ``name`` or ``arn`` (``kind``: the ARN's resource type)."""
    prefix = ctx.arn(f"{kind}/")
    if name is None and arn is None:
        ctx.invalid(f"Specify the {kind} by name or by ARN")
    if name is not None and arn is not None and arn != prefix + name:
        ctx.invalid(f"The {kind} ARN {arn} does not match the name {name}")
    if name is None:
        name = arn[len(prefix) :] if arn.startswith(prefix) else None
    found = table.get(name) if name is not None else None
    if found is None:
        ctx.fail("ResourceNotFoundException", f"The {kind} {name or arn} does not exist")
    return found


def _members(ctx: Context, params: dict[str, Any]) -> tuple[Thing, ThingGroup]:
    state = state_of(ctx)
    group: ThingGroup = _resolve(
        ctx, state.groups, "thinggroup", params.get("thingGroupName"), params.get("thingGroupArn")
    )
    thing: Thing = _resolve(
        ctx, state.things, "thing", params.get("thingName"), params.get("thingArn")
    )
    return thing, group


def _join(ctx: Context, thing: Thing, group: ThingGroup) -> None:
    if thing.groups is None:
        thing.groups = Table()
    if group.name in thing.groups:
        return
    if len(thing.groups) >= MAX_GROUPS_PER_THING:
        ctx.invalid(f"Thing {thing.name} is already in {MAX_GROUPS_PER_THING} thing groups")
    thing.groups.put(group.name, group)
    group.things.put(thing.name, thing)


def _leave(thing: Thing, group: ThingGroup) -> None:
    if thing.groups is not None:
        thing.groups.delete(group.name)
    group.things.delete(thing.name)


def _name_and_arn(group: ThingGroup) -> dict[str, str]:
    return {"groupName": group.name, "groupArn": group.arn}


def _created(group: ThingGroup) -> dict[str, Any]:
    return {
        "thingGroupName": group.name,
        "thingGroupArn": group.arn,
        "thingGroupId": group.group_id,
    }


@handler("iot", "CreateThingGroup")
def create_thing_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create a group, or answer the existing one when parent and properties are the same."""
    state = state_of(ctx)
    name, parent_name = params["thingGroupName"], params.get("parentGroupName")
    properties = params.get("thingGroupProperties") or {}
    description = properties.get("thingGroupDescription")
    attributes = payload_attributes(properties.get("attributePayload"))
    group = state.groups.get(name)
    if group is not None:
        current = (group.parent.name if group.parent else None, group.description, group.attributes)
        if current != (parent_name, description, attributes):
            ctx.fail(
                "ResourceAlreadyExistsException",
                f"Thing group {name} already exists with different properties",
                resourceId=group.group_id,
                resourceArn=group.arn,
            )
        return _created(group)
    parent = state.groups.get(parent_name) if parent_name is not None else None
    if parent_name is not None and parent is None:
        ctx.invalid(f"The parent thing group {parent_name} does not exist")
    if parent is not None and len(parent.lineage()) + 2 > MAX_GROUP_DEPTH:
        ctx.invalid(f"A thing group hierarchy is at most {MAX_GROUP_DEPTH} levels deep")
    group = ThingGroup(
        name, ctx.new_id(), ctx.arn(f"thinggroup/{name}"), parent, description, attributes, ctx.now
    )
    group.tags = request_tags(ctx, params)
    state.groups.put(name, group)
    (parent.children if parent is not None else state.roots).put(name, group)
    return _created(group)


@tag_resolver("iot")
def _tagged_group(ctx: Context, arn: str) -> Taggable | None:
    return resource_by_arn(ctx, arn, "thinggroup/", state_of(ctx).groups.get, "ThingGroup")


@handler("iot", "DescribeThingGroup")
def describe_thing_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Describe a group, with its ancestry."""
    group = _group(ctx, params["thingGroupName"])
    properties = present(
        thingGroupDescription=group.description,
        attributePayload={"attributes": group.attributes} if group.attributes else None,
    )
    lineage = group.lineage()
    metadata = present(
        parentGroupName=group.parent.name if group.parent else None,
        rootToParentThingGroups=[_name_and_arn(g) for g in lineage] if lineage else None,
        creationDate=group.created,
    )
    return {
        "thingGroupName": group.name,
        "thingGroupId": group.group_id,
        "thingGroupArn": group.arn,
        "version": group.version,
        "thingGroupProperties": properties,
        "thingGroupMetadata": metadata,
    }


@handler("iot", "UpdateThingGroup")
def update_thing_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Change a group's description and attributes (attributes as in UpdateThing)."""
    group = _group(ctx, params["thingGroupName"])
    check_version(ctx, params, group.version, f"Thing group {group.name}")
    properties = params["thingGroupProperties"]
    if "thingGroupDescription" in properties:
        group.description = properties["thingGroupDescription"]
    group.attributes = updated_attributes(group.attributes, properties.get("attributePayload"))
    group.version += 1
    return {"version": group.version}


@handler("iot", "DeleteThingGroup")
def delete_thing_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a childless group and its memberships (a missing group is already deleted)."""
    state = state_of(ctx)
    group = state.groups.get(params["thingGroupName"])
    if group is None:
        return {}
    check_version(ctx, params, group.version, f"Thing group {group.name}")
    if len(group.children):
        ctx.invalid(f"Thing group {group.name} still has child groups; delete them first")
    for thing in group.things.values():
        if thing.groups is not None:
            thing.groups.delete(group.name)
    (group.parent.children if group.parent is not None else state.roots).delete(group.name)
    state.groups.delete(group.name)
    return {}


@handler("iot", "ListThingGroups")
def list_thing_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of groups, by parent (children or all descendants) and name prefix."""
    state = state_of(ctx)
    prefix, parent_name = params.get("namePrefixFilter"), params.get("parentGroup")
    recursive = params.get("recursive") is not False
    checks: list[Callable[[ThingGroup], bool]] = []
    if parent_name is None:
        table = state.groups if recursive else state.roots
    elif recursive:
        parent = _group(ctx, parent_name)
        table = state.groups
        checks.append(lambda g: parent in g.lineage())
    else:
        table = _group(ctx, parent_name).children
    if prefix is not None:
        checks.append(lambda g: g.name.startswith(prefix))
    keep = (lambda g: all(check(g) for check in checks)) if checks else None
    groups, token = ctx.page(table, params, keep)
    return present(thingGroups=[_name_and_arn(g) for g in groups], nextToken=token)


@handler("iot", "AddThingToThingGroup")
def add_thing_to_thing_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Make a thing a member of a group (again is a no-op)."""
    thing, group = _members(ctx, params)
    _join(ctx, thing, group)
    return {}


@handler("iot", "RemoveThingFromThingGroup")
def remove_thing_from_thing_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """End a thing's membership of a group (a non-member is left as it is)."""
    thing, group = _members(ctx, params)
    _leave(thing, group)
    return {}


@handler("iot", "UpdateThingGroupsForThing")
def update_thing_groups_for_thing(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Add a thing to some groups and remove it from others, all or nothing."""
    if params.get("thingName") is None:
        ctx.invalid("thingName is required")
    thing = thing_named(ctx, params["thingName"])
    adding = [_group(ctx, n) for n in dict.fromkeys(params.get("thingGroupsToAdd") or ())]
    removing = [_group(ctx, n) for n in dict.fromkeys(params.get("thingGroupsToRemove") or ())]
    current = {g.name for g in thing.groups.values()} if thing.groups is not None else set()
    after = (current | {g.name for g in adding}) - {g.name for g in removing}
    if len(after) > MAX_GROUPS_PER_THING:
        ctx.invalid(f"A thing can be in at most {MAX_GROUPS_PER_THING} thing groups")
    for group in removing:
        _leave(thing, group)
    for group in adding:
        if group.name in after:
            _join(ctx, thing, group)
    return {}


@handler("iot", "ListThingsInThingGroup")
def list_things_in_thing_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of a group's thing names; ``recursive`` adds its descendants' things, once each."""
    group = _group(ctx, params["thingGroupName"])
    table = _SubtreeThings(group) if params.get("recursive") else group.things
    things, token = ctx.page(table, params)
    return present(things=[t.name for t in things], nextToken=token)


@handler("iot", "ListThingGroupsForThing")
def list_thing_groups_for_thing(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of the groups a thing is a direct member of."""
    thing = thing_named(ctx, params["thingName"])
    groups, token = ctx.page(thing.groups if thing.groups is not None else Table(), params)
    return present(thingGroups=[_name_and_arn(g) for g in groups], nextToken=token)
