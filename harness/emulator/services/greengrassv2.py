"""Greengrass V2 deployments: one continuous deployment per target, kept as revisions.

Semantics (AWS documents them in the CreateDeployment, CancelDeployment and DeleteDeployment
references and in the subdeployments guide):

* a target (thing or thing group) has one *latest* deployment; creating another for the same
  target makes it the next revision (``revisionId`` "1", "2", ...) and the previous one stops
  being latest and, when it was ``ACTIVE``, becomes ``INACTIVE`` (a ``CANCELED`` revision stays
  ``CANCELED``: that is the more informative terminal state);
* ``parentTargetArn`` makes a subdeployment: its target must be a thing group other than the
  parent, and a thing group that served as a subdeployment target for one parent cannot serve
  another (the subdeployments guide: "it can't be reused with a different parent fleet");
* cancelling works only on an ``ACTIVE`` deployment (ConflictException otherwise);
* deleting an ``ACTIVE`` deployment is a ConflictException ("To delete an active deployment, you
  must first cancel it"); deleting the latest revision leaves the target without a latest one,
  and revision numbers are never reused.

Every listing is served from an index whose rows all match, so a page costs O(page) however many
deployments exist; only the rare combination of both ``targetArn`` and ``parentTargetArn``
filters the (small) revision history of one target.

Other Greengrass V2 operations stay generic: the state subclasses :class:`GenericState` so that
their model-driven tables keep working next to the deployments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.emulator._context import Context, handler, service_state
from harness.emulator._generic import GenericState
from harness.emulator._state import Table, record_of

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Deployment", "GreengrassState"]

_SERVICE = "greengrassv2"
_RESOURCE_TYPE = "deployment"


@dataclass(slots=True)
class Deployment:
    """One deployment revision.

    :param spec: the request members echoed by GetDeployment as given (components,
        deploymentPolicies, iotJobConfiguration, tags)
    """

    deployment_id: str
    target_arn: str
    revision: int
    created: float
    iot_job_id: str
    iot_job_arn: str
    name: str | None = None
    parent: str | None = None
    status: str = "ACTIVE"
    latest: bool = True
    spec: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``Deployment`` structure of ListDeployments."""
        out: dict[str, Any] = {
            "targetArn": self.target_arn,
            "revisionId": str(self.revision),
            "deploymentId": self.deployment_id,
            "creationTimestamp": self.created,
            "deploymentStatus": self.status,
            "isLatestForTarget": self.latest,
        }
        if self.name is not None:
            out["deploymentName"] = self.name
        if self.parent is not None:
            out["parentTargetArn"] = self.parent
        return out

    def detail(self) -> dict[str, Any]:
        """The GetDeployment output."""
        out = self.summary()
        out["iotJobId"] = self.iot_job_id
        out["iotJobArn"] = self.iot_job_arn
        out.update(self.spec)
        return out


def _index_put(index: dict[str, Table[str, Deployment]], key: str, item: Deployment) -> None:
    table = index.get(key)
    if table is None:
        table = index[key] = Table()
    table.put(item.deployment_id, item)


def _index_delete(index: dict[str, Table[str, Deployment]], key: str, item: Deployment) -> None:
    table = index.get(key)
    if table is None:
        return
    table.delete(item.deployment_id)
    if not len(table):
        # Drop empty per-key tables so that churn over many targets does not leak memory.
        del index[key]


@service_state(_SERVICE)
class GreengrassState(GenericState):
    """Deployments of one account and region, with the indexes that keep listings O(page)."""

    def __init__(self) -> None:
        super().__init__()
        #: every deployment, in creation order (``historyFilter=ALL``)
        self.deployments: Table[str, Deployment] = Table()
        #: the latest revision of each target, in the order they became latest (``LATEST_ONLY``)
        self.latest: Table[str, Deployment] = Table()
        self.latest_by_target: dict[str, Deployment] = {}
        self.by_target: dict[str, Table[str, Deployment]] = {}
        self.by_parent: dict[str, Table[str, Deployment]] = {}
        self.latest_by_parent: dict[str, Table[str, Deployment]] = {}
        #: the last revision number of each target (kept after deletes: numbers are not reused)
        self.revisions: dict[str, int] = {}
        #: the parent a thing group was first used with as a subdeployment target
        self.subdeployment_parent: dict[str, str] = {}

    def counts(self) -> dict[str, int]:
        """Resources per type (the generic ones and the deployments)."""
        counts = super().counts()
        if len(self.deployments):
            counts["Deployment"] = len(self.deployments)
        return counts

    def dump(self) -> dict[str, Any]:
        """The state as plain data; the indexes name deployments by id."""
        data = super().dump()
        data["deployments"] = (
            self.deployments.layout(),
            [record_of(item) for item in self.deployments.values()],
        )
        data["latest"] = self.latest.layout()
        data["latest_by_target"] = {
            target: item.deployment_id for target, item in self.latest_by_target.items()
        }
        for name in ("by_target", "by_parent", "latest_by_parent"):
            index: dict[str, Table[str, Deployment]] = getattr(self, name)
            data[name] = {key: table.layout() for key, table in index.items()}
        data["revisions"] = self.revisions
        data["subdeployment_parent"] = self.subdeployment_parent
        return data

    def restore(self, data: dict[str, Any]) -> None:
        """Fill this fresh instance from what :meth:`dump` gave."""
        super().restore(data)
        layout, rows = data["deployments"]
        items = [Deployment(*row) for row in rows]
        self.deployments = Table.restored(layout, items)
        named = {item.deployment_id: item for item in items}

        def linked(keys: list[str | None]) -> Table[str, Deployment]:
            return Table.restored(keys, [named[key] for key in keys if key is not None])

        self.latest = linked(data["latest"])
        self.latest_by_target = {t: named[i] for t, i in data["latest_by_target"].items()}
        self.by_target = {key: linked(keys) for key, keys in data["by_target"].items()}
        self.by_parent = {key: linked(keys) for key, keys in data["by_parent"].items()}
        self.latest_by_parent = {
            key: linked(keys) for key, keys in data["latest_by_parent"].items()
        }
        self.revisions = data["revisions"]
        self.subdeployment_parent = data["subdeployment_parent"]

    def add(self, item: Deployment) -> None:
        """Store ``item`` as the latest revision of its target, superseding the previous one."""
        previous = self.latest_by_target.get(item.target_arn)
        if previous is not None:
            self._unlatest(previous)
            previous.latest = False
            if previous.status == "ACTIVE":
                previous.status = "INACTIVE"
        self.deployments.put(item.deployment_id, item)
        self.latest.put(item.deployment_id, item)
        self.latest_by_target[item.target_arn] = item
        _index_put(self.by_target, item.target_arn, item)
        if item.parent is not None:
            _index_put(self.by_parent, item.parent, item)
            _index_put(self.latest_by_parent, item.parent, item)

    def remove(self, item: Deployment) -> None:
        """Forget ``item`` in every index."""
        self.deployments.delete(item.deployment_id)
        if item.latest:
            self._unlatest(item)
            self.latest_by_target.pop(item.target_arn, None)
        _index_delete(self.by_target, item.target_arn, item)
        if item.parent is not None:
            _index_delete(self.by_parent, item.parent, item)

    def _unlatest(self, item: Deployment) -> None:
        self.latest.delete(item.deployment_id)
        if item.parent is not None:
            _index_delete(self.latest_by_parent, item.parent, item)


def _state(ctx: Context) -> GreengrassState:
    state = ctx.state
    assert isinstance(state, GreengrassState)
    return state


def _is_thing_group(arn: str) -> bool:
    # The model's pattern already guarantees arn:PARTITION:iot:REGION:ACCOUNT:(thing|thinggroup)/.+
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[5].startswith("thinggroup/")


def _find(ctx: Context, deployment_id: str) -> Deployment:
    found = _state(ctx).deployments.get(deployment_id)
    if found is None:
        ctx.fail(
            "ResourceNotFoundException",
            f"Deployment {deployment_id!r} does not exist",
            resourceId=deployment_id,
            resourceType=_RESOURCE_TYPE,
        )
    return found


@handler(_SERVICE, "CreateDeployment")
def create_deployment(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create the next revision of the target's deployment.

    :raises ApiError: ValidationException for a subdeployment whose target is not a thing group,
        is its own parent, or was already a subdeployment target of another parent
    """
    state = _state(ctx)
    target: str = params["targetArn"]
    parent: str | None = params.get("parentTargetArn")
    if parent is not None:
        if not _is_thing_group(target):
            ctx.invalid("A subdeployment (parentTargetArn) can only target a thing group")
        if parent == target:
            ctx.invalid("A subdeployment cannot target its own parent thing group")
        bound = state.subdeployment_parent.get(target)
        if bound is not None and bound != parent:
            ctx.invalid(
                f"Thing group {target!r} is already a subdeployment target of {bound!r}; "
                "it cannot be reused with a different parent"
            )
        state.subdeployment_parent.setdefault(target, parent)
    revision = state.revisions.get(target, 0) + 1
    state.revisions[target] = revision
    job_id = ctx.new_id()
    item = Deployment(
        deployment_id=ctx.new_id(),
        target_arn=target,
        revision=revision,
        created=ctx.now,
        iot_job_id=job_id,
        iot_job_arn=ctx.arn(f"job/{job_id}", service="iot"),
        name=params.get("deploymentName"),
        parent=parent,
        spec={
            key: params[key]
            for key in ("components", "deploymentPolicies", "iotJobConfiguration", "tags")
            if params.get(key) is not None
        },
    )
    state.add(item)
    return {
        "deploymentId": item.deployment_id,
        "iotJobId": item.iot_job_id,
        "iotJobArn": item.iot_job_arn,
    }


@handler(_SERVICE, "GetDeployment")
def get_deployment(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Everything stored about one deployment.

    :raises ApiError: ResourceNotFoundException for an unknown (or deleted) deployment
    """
    return _find(ctx, params["deploymentId"]).detail()


@handler(_SERVICE, "ListDeployments")
def list_deployments(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of deployments, filtered by target, parent and history (LATEST_ONLY default).

    :raises ApiError: ValidationException for a pagination token not issued for this request
    """
    state = _state(ctx)
    # Spell the default out so that a token from a request that named it continues one that
    # did not, and the other way round (tokens are bound to the other parameters).
    params = {**params, "historyFilter": params.get("historyFilter") or "LATEST_ONLY"}
    latest_only = params["historyFilter"] == "LATEST_ONLY"
    target: str | None = params.get("targetArn")
    parent: str | None = params.get("parentTargetArn")
    keep: Callable[[Deployment], bool] | None = None
    table: Table[str, Deployment]
    if target is not None:
        if latest_only:
            # At most one row: a throwaway table keeps the token handling in one place.
            table = Table()
            current = state.latest_by_target.get(target)
            if current is not None:
                table.put(current.deployment_id, current)
        else:
            table = state.by_target.get(target) or Table()
        if parent is not None:
            # Both filters: scan this one target's history (small) for the parent.
            def keep(item: Deployment) -> bool:
                return item.parent == parent
    elif parent is not None:
        index = state.latest_by_parent if latest_only else state.by_parent
        table = index.get(parent) or Table()
    else:
        table = state.latest if latest_only else state.deployments
    items, token = ctx.page(table, params, keep)
    out: dict[str, Any] = {"deployments": [item.summary() for item in items]}
    if token is not None:
        out["nextToken"] = token
    return out


@handler(_SERVICE, "CancelDeployment")
def cancel_deployment(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Cancel an active deployment (its status becomes CANCELED).

    :raises ApiError: ResourceNotFoundException for an unknown deployment; ConflictException for
        one that is not ACTIVE (already canceled, or superseded by a newer revision)
    """
    item = _find(ctx, params["deploymentId"])
    if item.status != "ACTIVE":
        ctx.fail(
            "ConflictException",
            f"Deployment {item.deployment_id!r} is {item.status}; only an ACTIVE deployment can "
            "be canceled",
            resourceId=item.deployment_id,
            resourceType=_RESOURCE_TYPE,
        )
    item.status = "CANCELED"
    return {"message": f"Deployment {item.deployment_id} was canceled"}


@handler(_SERVICE, "DeleteDeployment")
def delete_deployment(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a deployment that is not active.

    :raises ApiError: ResourceNotFoundException for an unknown deployment; ConflictException for
        an ACTIVE one (AWS: "To delete an active deployment, you must first cancel it")
    """
    item = _find(ctx, params["deploymentId"])
    if item.status == "ACTIVE":
        ctx.fail(
            "ConflictException",
            f"Deployment {item.deployment_id!r} is ACTIVE; cancel it before deleting it",
            resourceId=item.deployment_id,
            resourceType=_RESOURCE_TYPE,
        )
    _state(ctx).remove(item)
    return {}
