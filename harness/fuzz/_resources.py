"""The seed resource types a fuzz run creates, and how to delete them again.

:class:`Cleanup` remembers each resource a run created and deletes them all, newest first, when
the run ends (whatever way it ends); :mod:`harness.fuzz._sweep` finds what a run that died left
behind and deletes it with the same :func:`delete`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.fuzz._session import FuzzSession

__all__ = ["GONE", "Cleanup", "Teardown", "delete", "teardown_of"]

#: Answers that mean "already gone": a delete that gets one has nothing left to do.
GONE = frozenset({"ResourceNotFoundException", "ResourceNotFound", "NotFoundException"})


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
            left.extend(delete(session, self._pending.pop()))
        return left


def delete(session: FuzzSession, teardown: Teardown) -> list[str]:
    """Make the calls of ``teardown``; return the failures, in words."""
    failed: list[str] = []
    for service, name, args in teardown.calls:
        reply = session.call(service, name, args)
        # A cancel that fails is fine: the deployment is inactive already, or gone.
        if name.startswith("Cancel") or (reply is not None and reply.ok):
            continue
        code = reply.error_code if reply is not None else "unsendable"
        if code not in GONE:
            failed.append(f"{teardown.what}: {name}({args}) -> {code}")
    return failed
