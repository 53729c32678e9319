"""The seed resource types a fuzz run creates, and how to delete them again.

Two uses: :class:`Cleanup` remembers each resource a run created and deletes them all, newest
first, when the run ends (whatever way it ends); :func:`sweep` finds what a run that died left
behind, by listing each seed type and keeping what carries the run's name prefix or tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.fuzz._safety import RUN_TAG
from harness.model import load_service

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from harness.fuzz._session import FuzzSession

__all__ = ["Cleanup", "Teardown", "sweep", "teardown_of"]

#: Answers that mean "already gone": a delete that gets one has nothing left to do.
_GONE = frozenset({"ResourceNotFoundException", "ResourceNotFound", "NotFoundException"})


@dataclass(frozen=True, slots=True)
class Teardown:
    """The calls that delete one resource, in order (a deployment is canceled, then deleted)."""

    what: str
    calls: tuple[tuple[str, str, dict[str, Any]], ...]


def _nested(output: dict[str, Any], key: str) -> dict[str, Any]:
    value = output.get(key)
    return value if isinstance(value, dict) else {}


def _proton_version(params: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    version = _nested(output, "environmentTemplateVersion")
    return {
        "templateName": params.get("templateName"),
        "majorVersion": version.get("majorVersion"),
        "minorVersion": version.get("minorVersion"),
    }


# (service, create operation) -> what to call to delete the resource it created, from the
# create's parameters and output.
_TEARDOWNS: dict[
    tuple[str, str], Callable[[dict[str, Any], dict[str, Any]], list[tuple[str, dict[str, Any]]]]
] = {
    ("iot", "CreateThing"): lambda p, _: [("DeleteThing", {"thingName": p["thingName"]})],
    ("iot", "CreateThingGroup"): lambda p, _: [
        ("DeleteThingGroup", {"thingGroupName": p["thingGroupName"]})
    ],
    ("iot", "CreatePackage"): lambda p, _: [("DeletePackage", {"packageName": p["packageName"]})],
    ("iot", "CreatePackageVersion"): lambda p, _: [
        (
            "DeletePackageVersion",
            {"packageName": p["packageName"], "versionName": p["versionName"]},
        )
    ],
    ("greengrassv2", "CreateDeployment"): lambda _, o: [
        ("CancelDeployment", {"deploymentId": o["deploymentId"]}),
        ("DeleteDeployment", {"deploymentId": o["deploymentId"]}),
    ],
    ("proton", "CreateEnvironmentTemplate"): lambda p, _: [
        ("DeleteEnvironmentTemplate", {"name": p["name"]})
    ],
    ("proton", "CreateEnvironmentTemplateVersion"): lambda p, o: [
        ("DeleteEnvironmentTemplateVersion", _proton_version(p, o))
    ],
    ("iotwireless", "CreateFuotaTask"): lambda _, o: [("DeleteFuotaTask", {"Id": o["Id"]})],
    ("iot-managed-integrations", "CreateOtaTask"): lambda _, o: [
        ("DeleteOtaTask", {"Identifier": o["TaskId"]})
    ],
}


def teardown_of(
    service: str, operation: str, params: dict[str, Any], output: dict[str, Any] | None
) -> Teardown | None:
    """How to delete what a successful ``operation`` created (``None``: it creates nothing the
    run tracks, or the answer lacks the id to delete it by)."""
    recipe = _TEARDOWNS.get((service, operation))
    if recipe is None:
        return None
    try:
        calls = recipe(params, output or {})
    except KeyError:
        return None
    return Teardown(f"{service}.{operation}", tuple((service, name, args) for name, args in calls))


class Cleanup:
    """The resources a run created, deleted newest first by :meth:`run`.

    Newest first, because children come after their parents (a package version after its
    package, a template version after its template) and parents refuse to go while they last.
    """

    def __init__(self) -> None:
        self._pending: list[Teardown] = []

    def __len__(self) -> int:
        return len(self._pending)

    def created(
        self, service: str, operation: str, params: dict[str, Any], output: dict[str, Any] | None
    ) -> None:
        """Remember what a successful ``operation`` created, if it is a tracked type."""
        found = teardown_of(service, operation, params, output)
        if found is not None:
            self._pending.append(found)

    def run(self, session: FuzzSession) -> list[str]:
        """Delete everything remembered; return what could not be deleted, in words."""
        left: list[str] = []
        while self._pending:
            left.extend(_delete(session, self._pending.pop()))
        return left


def _delete(session: FuzzSession, teardown: Teardown) -> list[str]:
    """Make the calls of ``teardown``; return the failures, in words."""
    failed: list[str] = []
    for service, name, args in teardown.calls:
        reply = session.call(service, name, args)
        # A cancel that fails is fine: the deployment is inactive already, or gone.
        if name.startswith("Cancel") or (reply is not None and reply.ok):
            continue
        code = reply.error_code if reply is not None else "unsendable"
        if code not in _GONE:
            failed.append(f"{teardown.what}: {name}({args}) -> {code}")
    return failed


# ------------------------------------------------------------------------------ sweep
def _listing(
    session: FuzzSession, service: str, operation: str, params: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Every item of a listing, page by page (the model's paginator names the tokens)."""
    op = load_service(service).operation(operation)
    page = op.paginator
    assert page is not None, f"{operation} has no paginator"
    token: Any = None
    for _ in range(10_000):  # a bound against a target that never stops paging
        args = dict(params)
        if token is not None:
            args[page.input_token[0]] = token
        reply = session.call(service, operation, args)
        if reply is None or not reply.ok or reply.output is None:
            return
        items = reply.output.get(page.result_key[0]) or []
        yield from (item for item in items if isinstance(item, dict))
        token = reply.output.get(page.output_token[0])
        if not token:
            return


def _tagged(session: FuzzSession, service: str, get: str, args: dict[str, Any], run: str) -> bool:
    reply = session.call(service, get, args)
    if reply is None or not reply.ok or reply.output is None:
        return False
    tags = reply.output.get("Tags") or reply.output.get("tags") or {}
    return isinstance(tags, dict) and tags.get(RUN_TAG) == run


def sweep(session: FuzzSession, run_id: str) -> tuple[list[str], list[str]]:
    """Delete what run ``run_id`` left behind: resources of the seed types whose name starts
    with ``harness-RUNID-`` or that carry the tag ``harness-run-id: RUNID``.

    :returns: ``(deleted, failed)``, each resource in words
    """
    prefix = f"harness-{run_id}-"
    found: list[Teardown] = []

    def add(what: str, service: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
        found.append(Teardown(what, tuple((service, name, args) for name, args in calls)))

    for d in _listing(session, "greengrassv2", "ListDeployments", {"historyFilter": "ALL"}):
        mine = str(d.get("deploymentName") or "").startswith(prefix)
        dep_id = {"deploymentId": d.get("deploymentId")}
        if mine or _tagged(session, "greengrassv2", "GetDeployment", dep_id, run_id):
            calls = [("CancelDeployment", dep_id), ("DeleteDeployment", dep_id)]
            add(f"deployment {dep_id['deploymentId']}", "greengrassv2", calls)
    for task in _listing(session, "iotwireless", "ListFuotaTasks", {}):
        if str(task.get("Name") or "").startswith(prefix):
            add(
                f"FUOTA task {task.get('Id')}",
                "iotwireless",
                [("DeleteFuotaTask", {"Id": task.get("Id")})],
            )
    for task in _listing(session, "iot-managed-integrations", "ListOtaTasks", {}):
        ident = {"Identifier": task.get("TaskId")}
        if _tagged(session, "iot-managed-integrations", "GetOtaTask", ident, run_id):
            add(
                f"OTA task {ident['Identifier']}",
                "iot-managed-integrations",
                [("DeleteOtaTask", ident)],
            )
    for template in _listing(session, "proton", "ListEnvironmentTemplates", {}):
        name = str(template.get("name") or "")
        if not name.startswith(prefix):
            continue
        versions = list(
            _listing(session, "proton", "ListEnvironmentTemplateVersions", {"templateName": name})
        )
        for v in reversed(versions):
            keys = {"templateName": name, **{k: v.get(k) for k in ("majorVersion", "minorVersion")}}
            add(f"template version {keys}", "proton", [("DeleteEnvironmentTemplateVersion", keys)])
        add(f"template {name}", "proton", [("DeleteEnvironmentTemplate", {"name": name})])
    for package in _listing(session, "iot", "ListPackages", {}):
        name = str(package.get("packageName") or "")
        if not name.startswith(prefix):
            continue
        for v in _listing(session, "iot", "ListPackageVersions", {"packageName": name}):
            keys = {"packageName": name, "versionName": v.get("versionName")}
            add(f"package version {keys}", "iot", [("DeletePackageVersion", keys)])
        add(f"package {name}", "iot", [("DeletePackage", {"packageName": name})])
    for thing in _listing(session, "iot", "ListThings", {}):
        name = str(thing.get("thingName") or "")
        if name.startswith(prefix):
            add(f"thing {name}", "iot", [("DeleteThing", {"thingName": name})])
    groups = list(_listing(session, "iot", "ListThingGroups", {"namePrefixFilter": prefix}))
    # Newest first: a child group is created after its parent, and a parent refuses to go first.
    for group in reversed(groups):
        name = str(group.get("groupName") or "")
        if name.startswith(prefix):
            add(f"thing group {name}", "iot", [("DeleteThingGroup", {"thingGroupName": name})])
    deleted: list[str] = []
    failed: list[str] = []
    for teardown in found:
        left = _delete(session, teardown)
        if left:
            failed.extend(left)
        else:
            deleted.append(teardown.what)
    return deleted, failed
