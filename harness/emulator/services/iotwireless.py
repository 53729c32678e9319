"""AWS IoT Wireless: FUOTA (firmware update over the air) tasks.

A FUOTA task is created ``Pending``, can be changed while it is ``Pending``, is started once
(``FuotaSession_Waiting``) and can be deleted at any time. Its tags are kept with it and served by
the tagging operations for FUOTA task ARNs; every other operation of the service, and tagging of
other resource types, is answered by the generic model-driven handler, whose tables this state
keeps (it extends :class:`~harness.emulator._generic.GenericState`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.emulator._context import Context, handler, service_state
from harness.emulator._generic import GenericState, generic_handler
from harness.emulator._state import Table, record_of

__all__ = ["FuotaTask", "WirelessState"]

SERVICE = "iotwireless"
#: The status a new task has, and the only one in which it may still be updated or started.
PENDING = "Pending"
#: The status after StartFuotaTask: AWS then waits for the session start time.
STARTED = "FuotaSession_Waiting"
#: TagList's modeled maximum: TagResource must not grow a task's tags past it.
MAX_TAGS = 200

# Optional request members stored and returned as they are (LoRaWAN and tags are kept apart).
_OPTIONAL = (
    "Name",
    "Description",
    "RedundancyPercent",
    "FragmentSizeBytes",
    "FragmentIntervalMS",
    "Descriptor",
)


@dataclass(slots=True)
class FuotaTask:
    """One FUOTA task as stored: the request's members plus what the service assigns.

    :param fields: the optional scalar members given at creation or by updates (``Name``,
        ``Description``, ``RedundancyPercent``...), by their API names
    :param rf_region: ``LoRaWAN.RfRegion``, when given
    :param start_time: ``LoRaWAN.StartTime`` (epoch seconds), set by StartFuotaTask
    :param tags: key -> value, in the order the keys were first set
    """

    id: str
    arn: str
    firmware_update_image: str
    firmware_update_role: str
    created_at: float
    status: str = PENDING
    fields: dict[str, Any] = field(default_factory=dict)
    rf_region: str | None = None
    start_time: float | None = None
    tags: dict[str, str] = field(default_factory=dict)


@service_state(SERVICE)
class WirelessState(GenericState):
    """IoT Wireless state of one account and region: FUOTA tasks, plus the generic tables."""

    __slots__ = ("fuota_arns", "fuota_tasks")

    def __init__(self) -> None:
        super().__init__()
        self.fuota_tasks: Table[str, FuotaTask] = Table()
        # ARN -> id, so that tagging finds a task from its ARN in O(1).
        self.fuota_arns: dict[str, str] = {}

    def counts(self) -> dict[str, int]:
        """Resources per type (FUOTA tasks and whatever the generic handler stored)."""
        counts = super().counts()
        if len(self.fuota_tasks):
            counts["FuotaTask"] = len(self.fuota_tasks)
        return counts

    def dump(self) -> dict[str, Any]:
        """The state as plain data."""
        data = super().dump()
        data["fuota_tasks"] = (
            self.fuota_tasks.layout(),
            [record_of(t) for t in self.fuota_tasks.values()],
        )
        data["fuota_arns"] = self.fuota_arns
        return data

    def restore(self, data: dict[str, Any]) -> None:
        """Fill this fresh instance from what :meth:`dump` gave."""
        super().restore(data)
        layout, rows = data["fuota_tasks"]
        self.fuota_tasks = Table.restored(layout, [FuotaTask(*row) for row in rows])
        self.fuota_arns = data["fuota_arns"]


def _state(ctx: Context) -> WirelessState:
    state: WirelessState = ctx.state
    return state


def _task(ctx: Context, task_id: str) -> FuotaTask:
    task = _state(ctx).fuota_tasks.get(task_id)
    if task is None:
        ctx.fail(
            "ResourceNotFoundException",
            f"FuotaTask {task_id!r} does not exist",
            ResourceId=task_id,
            ResourceType="FuotaTask",
        )
    return task


def _epoch(value: Any) -> float:
    """A validated request timestamp as epoch seconds.

    JSON bodies reach handlers as sent (the codec converts only blobs and renamed members), so a
    timestamp is an epoch number or an ISO 8601 string (botocore sends ``StartTime`` as the
    latter); the validator has already refused anything else. A zone-less ISO time is UTC.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
    else:
        return float(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _fuota_arn_prefix(ctx: Context) -> str:
    return ctx.arn("FuotaTask/")


# ------------------------------------------------------------------------------ FUOTA tasks
@handler(SERVICE, "CreateFuotaTask")
def create_fuota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create a ``Pending`` task; the core has already replayed or refused a reused token."""
    task_id = ctx.new_id()
    lorawan = params.get("LoRaWAN") or {}
    task = FuotaTask(
        id=task_id,
        arn=ctx.arn(f"FuotaTask/{task_id}"),
        firmware_update_image=params["FirmwareUpdateImage"],
        firmware_update_role=params["FirmwareUpdateRole"],
        created_at=ctx.now,
        fields={k: params[k] for k in _OPTIONAL if params.get(k) is not None},
        rf_region=lorawan.get("RfRegion"),
        # Later keys win, as when the same key is set twice with TagResource.
        tags={tag["Key"]: tag["Value"] for tag in params.get("Tags") or ()},
    )
    state = _state(ctx)
    state.fuota_tasks.put(task_id, task)
    state.fuota_arns[task.arn] = task_id
    return {"Arn": task.arn, "Id": task_id}


@handler(SERVICE, "GetFuotaTask")
def get_fuota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Every stored member of a task."""
    task = _task(ctx, params["Id"])
    out: dict[str, Any] = {
        "Arn": task.arn,
        "Id": task.id,
        "Status": task.status,
        "FirmwareUpdateImage": task.firmware_update_image,
        "FirmwareUpdateRole": task.firmware_update_role,
        "CreatedAt": task.created_at,
        **task.fields,
    }
    lorawan: dict[str, Any] = {}
    if task.rf_region is not None:
        lorawan["RfRegion"] = task.rf_region
    if task.start_time is not None:
        lorawan["StartTime"] = task.start_time
    if lorawan:
        out["LoRaWAN"] = lorawan
    return out


@handler(SERVICE, "ListFuotaTasks")
def list_fuota_tasks(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of tasks in creation order (``MaxResults`` 0 or absent: 50, as ctx.page does)."""
    tasks, token = ctx.page(_state(ctx).fuota_tasks, params)
    items = []
    for task in tasks:
        item = {"Id": task.id, "Arn": task.arn}
        if "Name" in task.fields:
            item["Name"] = task.fields["Name"]
        items.append(item)
    out: dict[str, Any] = {"FuotaTaskList": items}
    if token is not None:
        out["NextToken"] = token
    return out


@handler(SERVICE, "UpdateFuotaTask")
def update_fuota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Change the given members of a task that has not been started.

    A started task's firmware session is under way, so changing it is a conflict (the operation
    declares ConflictException for that).
    """
    task = _task(ctx, params["Id"])
    if task.status != PENDING:
        ctx.fail(
            "ConflictException",
            f"FuotaTask {task.id!r} is {task.status}, not {PENDING}",
            ResourceId=task.id,
            ResourceType="FuotaTask",
        )
    task.fields.update({k: params[k] for k in _OPTIONAL if params.get(k) is not None})
    task.firmware_update_image = params.get("FirmwareUpdateImage") or task.firmware_update_image
    task.firmware_update_role = params.get("FirmwareUpdateRole") or task.firmware_update_role
    lorawan = params.get("LoRaWAN") or {}
    if lorawan.get("RfRegion") is not None:
        task.rf_region = lorawan["RfRegion"]
    return {}


@handler(SERVICE, "StartFuotaTask")
def start_fuota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Start a ``Pending`` task at ``LoRaWAN.StartTime`` (now when absent); twice is a conflict."""
    task = _task(ctx, params["Id"])
    if task.status != PENDING:
        ctx.fail(
            "ConflictException",
            f"FuotaTask {task.id!r} is already {task.status}",
            ResourceId=task.id,
            ResourceType="FuotaTask",
        )
    start = (params.get("LoRaWAN") or {}).get("StartTime")
    task.start_time = ctx.now if start is None else _epoch(start)
    task.status = STARTED
    return {}


@handler(SERVICE, "DeleteFuotaTask")
def delete_fuota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a task (in any status) with its tags; a second delete is ResourceNotFound."""
    task = _task(ctx, params["Id"])
    state = _state(ctx)
    state.fuota_tasks.delete(task.id)
    state.fuota_arns.pop(task.arn, None)
    return {}


# -------------------------------------------------------------------------------- tagging
def _tagged_task(ctx: Context, params: dict[str, Any]) -> FuotaTask | None:
    """The task a tagging request names, ``None`` when the ARN is not a FUOTA task's.

    :raises ApiError: ResourceNotFoundException for a FUOTA task ARN of this account and region
        that names no task
    """
    arn = params["ResourceArn"]
    task_id = ctx.id_for_arn(arn, _fuota_arn_prefix(ctx), _state(ctx).fuota_arns, "FuotaTask")
    return None if task_id is None else _task(ctx, task_id)


@handler(SERVICE, "ListTagsForResource")
def list_tags_for_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """A FUOTA task's tags; other resource types are answered generically."""
    task = _tagged_task(ctx, params)
    if task is None:
        return generic_handler(ctx, params)
    return {"Tags": [{"Key": k, "Value": v} for k, v in task.tags.items()]}


@handler(SERVICE, "TagResource")
def tag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Add or overwrite a FUOTA task's tags (at most 200 in all)."""
    task = _tagged_task(ctx, params)
    if task is None:
        return generic_handler(ctx, params)
    merged = dict(task.tags)
    merged.update({tag["Key"]: tag["Value"] for tag in params["Tags"]})
    if len(merged) > MAX_TAGS:
        ctx.fail(
            "TooManyTagsException",
            f"a resource can have at most {MAX_TAGS} tags, this request makes {len(merged)}",
            ResourceName=task.arn,
        )
    task.tags = merged
    return {}


@handler(SERVICE, "UntagResource")
def untag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Remove tags from a FUOTA task (keys it does not have are ignored, as AWS does)."""
    task = _tagged_task(ctx, params)
    if task is None:
        return generic_handler(ctx, params)
    for key in params["TagKeys"]:
        task.tags.pop(key, None)
    return {}
