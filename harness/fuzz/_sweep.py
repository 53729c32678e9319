"""``harness sweep``: find and delete what a fuzz run left behind, and nothing else.

A run marks what it creates (:mod:`harness.fuzz._safety`): every create that takes tags gets
the tag ``harness-run-id: RUNID``, and name members get the prefix ``harness-RUNID-``. The
sweep lists every resource of each seed type (:data:`SWEPT_TYPES`) and judges each one by the
mark its type can carry, as the model says:

* a **taggable** type (its create operation takes tags) is judged by its tags alone: the
  resource is the run's when its run tag names the run. A resource whose run tag names another
  run, or that has no run tag, stays, whatever its name: a FUOTA task need not have a name, and
  anyone can name a thing group ``harness-RUNID-...``;
* a type that takes no tags (IoT things) is judged by the name prefix, the only mark it has.

Tags are read where the model offers them, cheapest first: in the listed item, in the output of
the type's Get/Describe operation, else with the service's ``ListTagsForResource`` on the
resource's ARN (from the listed item, or from the describe output).

Deletes run in passes: a delete that fails (a thing group whose child group is still there, a
package whose versions are not gone yet) is tried again after the others, as long as a pass
deletes something.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from harness.fuzz._resources import GONE, Teardown, delete
from harness.fuzz._safety import RUN_TAG, SafetyPolicy
from harness.model import load_service

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from harness.fuzz._session import FuzzSession
    from harness.model import Operation, Shape

__all__ = ["SWEPT_TYPES", "SweptType", "TagSource", "sweep", "tag_source"]

#: Delete passes at most: IoT's thing-group hierarchy is 7 deep, each pass removes a level.
_PASSES = 10
#: Pages per listing at most: a bound against a target that never stops paging.
_PAGES = 10_000


# eq=False: hashed by identity (its mappings are not hashable), so tag_source can cache it.
@dataclass(frozen=True, slots=True, eq=False)
class SweptType:
    """A seed resource type as the sweep lists, judges and deletes it.

    :param what: the type in words
    :param create: the create operation: the type is taggable when its input takes tags
    :param listing: the list operation; ``params`` are sent with it, and ``scope`` maps its
        members to the parent's keys (versions are listed per package)
    :param keys: request member -> listed item member: what identifies one resource to the
        ``describe`` operation and the ``deletes``
    :param name: the listed item member holding the name (judged by prefix when not taggable)
    :param arn: the member holding the ARN, in the listed item or the describe output
    :param deletes: the calls that delete one resource, in order (a cancel's failure is fine)
    :param children: types listed per resource of this one, deleted before it
    """

    what: str
    service: str
    create: str
    listing: str
    keys: Mapping[str, str]
    deletes: tuple[str, ...]
    name: str | None = None
    describe: str | None = None
    arn: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    scope: Mapping[str, str] = field(default_factory=dict)
    children: tuple[SweptType, ...] = ()

    @property
    def taggable(self) -> bool:
        """Whether the type's resources carry tags: its create operation takes them."""
        shape = load_service(self.service).operation(self.create).input
        return shape is not None and _tags_member(shape) is not None


_TEMPLATE_VERSION = SweptType(
    "environment template version",
    "proton",
    "CreateEnvironmentTemplateVersion",
    "ListEnvironmentTemplateVersions",
    keys={
        "templateName": "templateName",
        "majorVersion": "majorVersion",
        "minorVersion": "minorVersion",
    },
    deletes=("DeleteEnvironmentTemplateVersion",),
    describe="GetEnvironmentTemplateVersion",
    arn="arn",
    scope={"templateName": "name"},
)
_PACKAGE_VERSION = SweptType(
    "package version",
    "iot",
    "CreatePackageVersion",
    "ListPackageVersions",
    keys={"packageName": "packageName", "versionName": "versionName"},
    deletes=("DeletePackageVersion",),
    describe="GetPackageVersion",
    arn="packageVersionArn",
    scope={"packageName": "packageName"},
)
#: The types a run can create (the writes of :data:`~harness.fuzz._safety.WRITE_OPERATIONS`).
SWEPT_TYPES: tuple[SweptType, ...] = (
    SweptType(
        "deployment",
        "greengrassv2",
        "CreateDeployment",
        "ListDeployments",
        keys={"deploymentId": "deploymentId"},
        deletes=("CancelDeployment", "DeleteDeployment"),
        name="deploymentName",
        describe="GetDeployment",
        params={"historyFilter": "ALL"},
    ),
    SweptType(
        "FUOTA task",
        "iotwireless",
        "CreateFuotaTask",
        "ListFuotaTasks",
        keys={"Id": "Id"},
        deletes=("DeleteFuotaTask",),
        name="Name",
        describe="GetFuotaTask",
        arn="Arn",
    ),
    SweptType(
        "OTA task",
        "iot-managed-integrations",
        "CreateOtaTask",
        "ListOtaTasks",
        keys={"Identifier": "TaskId"},
        deletes=("DeleteOtaTask",),
        describe="GetOtaTask",
        arn="TaskArn",
    ),
    SweptType(
        "environment template",
        "proton",
        "CreateEnvironmentTemplate",
        "ListEnvironmentTemplates",
        keys={"name": "name"},
        deletes=("DeleteEnvironmentTemplate",),
        name="name",
        describe="GetEnvironmentTemplate",
        arn="arn",
        children=(_TEMPLATE_VERSION,),
    ),
    SweptType(
        "package",
        "iot",
        "CreatePackage",
        "ListPackages",
        keys={"packageName": "packageName"},
        deletes=("DeletePackage",),
        name="packageName",
        describe="GetPackage",
        arn="packageArn",
        children=(_PACKAGE_VERSION,),
    ),
    SweptType(
        "thing",
        "iot",
        "CreateThing",
        "ListThings",
        keys={"thingName": "thingName"},
        deletes=("DeleteThing",),
        name="thingName",
        describe="DescribeThing",
        arn="thingArn",
    ),
    SweptType(
        "thing group",
        "iot",
        "CreateThingGroup",
        "ListThingGroups",
        keys={"thingGroupName": "groupName"},
        deletes=("DeleteThingGroup",),
        name="groupName",
        describe="DescribeThingGroup",
        arn="groupArn",
    ),
)


# ------------------------------------------------------------------------------ the model
def _tags_member(shape: Shape) -> str | None:
    return next((n for n in shape.members if n.lower() == "tags"), None)


def _item_shape(op: Operation) -> Shape | None:
    """The shape of one item of a listing."""
    if op.paginator is None or op.output is None:
        return None
    ref = op.output.members.get(op.paginator.result_key[0])
    if ref is None or ref.shape.member is None:
        return None
    return ref.shape.member.shape


@dataclass(frozen=True, slots=True)
class TagSource:
    """Where a type's tags are read, as the model offers them.

    :param where: ``"item"`` (the listed item), ``"describe"`` (the describe output) or
        ``"list-tags"`` (the service's ListTagsForResource on the resource's ARN)
    :param member: the member holding the tags (of the item, the describe output or the
        ListTagsForResource output)
    :param arn_member: for ``"list-tags"``, ListTagsForResource's member naming the ARN
    """

    where: Literal["item", "describe", "list-tags"]
    member: str
    arn_member: str | None = None


@cache
def tag_source(kind: SweptType) -> TagSource | None:
    """Where the tags of ``kind`` are read (``None``: the type takes no tags)."""
    if not kind.taggable:
        return None
    service = load_service(kind.service)
    item = _item_shape(service.operation(kind.listing))
    found = _tags_member(item) if item is not None else None
    if found is not None:
        return TagSource("item", found)
    described = service.operation(kind.describe).output if kind.describe else None
    found = _tags_member(described) if described is not None else None
    if found is not None:
        return TagSource("describe", found)
    lister = service.operation("ListTagsForResource")
    assert lister.input is not None and lister.output is not None
    arn_member = next(n for n in lister.input.required if n.lower().endswith("arn"))
    member = _tags_member(lister.output)
    assert member is not None, f"{kind.service}.ListTagsForResource answers no tags"
    return TagSource("list-tags", member, arn_member)


# ------------------------------------------------------------------------------ reading
class _Failed(Exception):
    """A call the sweep needs failed: the resource cannot be judged (nothing is deleted)."""

    def __init__(self, call: str, code: str) -> None:
        super().__init__(f"{call} -> {code}")
        self.code = code


def _pages(
    session: FuzzSession, service: str, operation: str, params: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Every page of a call (one when the operation does not page).

    :raises _Failed: when a page is refused
    """
    page = load_service(service).operation(operation).paginator
    token: Any = None
    for _ in range(_PAGES):
        args = dict(params)
        if token is not None and page is not None:
            args[page.input_token[0]] = token
        reply = session.call(service, operation, args)
        if reply is None or not reply.ok or reply.output is None:
            code = "unsendable" if reply is None else str(reply.error_code or reply.status)
            raise _Failed(f"{service}.{operation}({params})", code)
        yield reply.output
        token = reply.output.get(page.output_token[0]) if page is not None else None
        if not token:
            return


def _items(
    session: FuzzSession, kind: SweptType, params: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    page = load_service(kind.service).operation(kind.listing).paginator
    assert page is not None, f"{kind.listing} has no paginator"
    for output in _pages(session, kind.service, kind.listing, params):
        items = output.get(page.result_key[0]) or []
        yield from (item for item in items if isinstance(item, dict))


def _as_dict(tags: Any) -> dict[str, str]:
    """Tags as a map, from a map or a list of key/value structures (``Key``, ``key``...)."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    for entry in tags if isinstance(tags, list) else ():
        if isinstance(entry, dict):
            lowered = {str(k).lower(): v for k, v in entry.items()}
            if "key" in lowered:
                out[str(lowered["key"])] = str(lowered.get("value") or "")
    return out


def _member(output: dict[str, Any], name: str) -> Any:
    """A member of an output, or of the one structure it wraps (Proton's Get answers)."""
    if name in output:
        return output[name]
    nested = [v for v in output.values() if isinstance(v, dict)]
    return nested[0].get(name) if len(nested) == 1 else None


def _tags(
    session: FuzzSession, kind: SweptType, item: dict[str, Any], keys: dict[str, Any]
) -> dict[str, str] | None:
    """The tags of one listed resource (``None``: it is gone already).

    :raises _Failed: when they cannot be read
    """
    source = tag_source(kind)
    assert source is not None
    if source.where == "item":
        return _as_dict(item.get(source.member))
    described: dict[str, Any] = {}
    if source.where == "describe" or (kind.arn is not None and not item.get(kind.arn)):
        assert kind.describe is not None
        try:
            described = next(_pages(session, kind.service, kind.describe, keys))
        except _Failed as exc:
            if exc.code in GONE:
                return None
            raise
        if source.where == "describe":
            return _as_dict(_member(described, source.member))
    assert kind.arn is not None and source.arn_member is not None
    arn = item.get(kind.arn) or _member(described, kind.arn)
    tags: dict[str, str] = {}
    try:
        for output in _pages(
            session, kind.service, "ListTagsForResource", {source.arn_member: arn}
        ):
            tags.update(_as_dict(output.get(source.member)))
    except _Failed as exc:
        if exc.code in GONE:
            return None
        raise
    return tags


# ------------------------------------------------------------------------------ sweeping
@dataclass(slots=True)
class _Sweep:
    session: FuzzSession
    run_id: str
    found: list[Teardown] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return SafetyPolicy(run_id=self.run_id).prefix

    def collect(self, kind: SweptType, scope: dict[str, Any]) -> None:
        """Remember every resource of ``kind`` (within ``scope``) that is the run's."""
        params = {**kind.params, **scope}
        mine: list[tuple[dict[str, Any], dict[str, Any]]] = []
        try:
            for item in _items(self.session, kind, params):
                keys = {member: item.get(listed) for member, listed in kind.keys.items()}
                if self.judge(kind, item, keys):
                    mine.append((item, keys))
        except _Failed as exc:
            self.failed.append(f"{kind.what}s: could not list them: {exc}")
        # Newest first: children come after their parents (a child thing group after its
        # parent, a minor version after the one before), and parents refuse to go first.
        for item, keys in reversed(mine):
            for child in kind.children:
                self.collect(child, {m: item.get(kind.keys[p]) for m, p in child.scope.items()})
            calls = tuple((kind.service, op, keys) for op in kind.deletes)
            label = " ".join(str(v) for v in keys.values())
            self.found.append(Teardown(f"{kind.what} {label}", calls))

    def judge(self, kind: SweptType, item: dict[str, Any], keys: dict[str, Any]) -> bool:
        """Whether one listed resource is the run's (see the module docstring)."""
        if not kind.taggable:
            return kind.name is not None and str(item.get(kind.name) or "").startswith(self.prefix)
        try:
            tags = _tags(self.session, kind, item, keys)
        except _Failed as exc:
            label = " ".join(str(v) for v in keys.values())
            self.failed.append(f"{kind.what} {label}: could not read its tags: {exc}")
            return False
        return tags is not None and tags.get(RUN_TAG) == self.run_id

    def delete(self) -> list[str]:
        """Delete what was found, in passes; return what was deleted."""
        deleted: list[str] = []
        pending = self.found
        for _ in range(_PASSES):
            left: list[tuple[Teardown, list[str]]] = []
            for teardown in pending:
                errors = delete(self.session, teardown)
                if errors:
                    left.append((teardown, errors))
                else:
                    deleted.append(teardown.what)
            if not left or len(left) == len(pending):
                break
            pending = [teardown for teardown, _ in left]
        self.failed.extend(error for _, errors in left for error in errors)
        return deleted


def sweep(session: FuzzSession, run_id: str) -> tuple[list[str], list[str]]:
    """Delete what run ``run_id`` left behind (see the module docstring for what counts).

    :returns: ``(deleted, failed)``, each resource in words; ``failed`` also names the
        listings and tags that could not be read (their resources are left alone)
    """
    state = _Sweep(session, run_id)
    for kind in SWEPT_TYPES:
        state.collect(kind, {})
    deleted = state.delete()
    return deleted, state.failed
