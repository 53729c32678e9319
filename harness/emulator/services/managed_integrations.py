"""Managed integrations for AWS IoT Device Management: over-the-air (OTA) tasks.

An OTA task starts ``SCHEDULED`` when its scheduling config names a start time and
``IN_PROGRESS`` otherwise; it keeps every member it was created with, can have its description
and task configuration changed, and is gone once deleted. Its tags are served by the tagging
operations for OTA task ARNs; every other operation, and tagging of other resource types, is
answered by the generic model-driven handler, whose tables this state keeps.

``TaskConfigurationId`` is stored but not checked against OTA task configurations: those are
created generically, and the generic handler does not hand out ids it can find again (see the
report on ``CreateOtaTaskConfiguration``), so a check would refuse ids the emulator gave out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from harness.emulator._context import Context, handler, service_state
from harness.emulator._generic import GenericState, generic_handler
from harness.emulator._state import Table, record_of

__all__ = ["ManagedIntegrationsState", "OtaTask"]

SERVICE = "iot-managed-integrations"
#: TagsMap's modeled maximum number of entries.
MAX_TAGS = 50

# Optional CreateOtaTask members stored and returned by GetOtaTask as they were sent.
_STORED = (
    "Description",
    "Protocol",
    "Target",
    "TaskConfigurationId",
    "OtaMechanism",
    "OtaTargetQueryString",
    "OtaSchedulingConfig",
    "OtaTaskExecutionRetryConfig",
)
# The counters of TaskProcessingDetails, with the model's own (mixed) capitalisation.
_COUNTERS = (
    "NumberOfCanceledThings",
    "NumberOfFailedThings",
    "NumberOfInProgressThings",
    "numberOfRejectedThings",
    "numberOfRemovedThings",
    "numberOfSucceededThings",
    "numberOfTimedOutThings",
)


@dataclass(slots=True)
class OtaTask:
    """One OTA task as stored.

    :param fields: the optional members given at creation (and changed by updates), by their
        API names
    :param tags: key -> value
    """

    task_id: str
    task_arn: str
    s3_url: str
    ota_type: str
    status: str
    created_at: float
    last_updated_at: float
    fields: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@service_state(SERVICE)
class ManagedIntegrationsState(GenericState):
    """Managed integrations state of one account and region: OTA tasks and the generic tables."""

    __slots__ = ("ota_arns", "ota_tasks")

    def __init__(self) -> None:
        super().__init__()
        self.ota_tasks: Table[str, OtaTask] = Table()
        # ARN -> task id, so that tagging finds a task from its ARN in O(1).
        self.ota_arns: dict[str, str] = {}

    def counts(self) -> dict[str, int]:
        """Resources per type (OTA tasks and whatever the generic handler stored)."""
        counts = super().counts()
        if len(self.ota_tasks):
            counts["OtaTask"] = len(self.ota_tasks)
        return counts

    def dump(self) -> dict[str, Any]:
        """The state as plain data."""
        data = super().dump()
        data["ota_tasks"] = (
            self.ota_tasks.layout(),
            [record_of(t) for t in self.ota_tasks.values()],
        )
        data["ota_arns"] = self.ota_arns
        return data

    def restore(self, data: dict[str, Any]) -> None:
        """Fill this fresh instance from what :meth:`dump` gave."""
        super().restore(data)
        layout, rows = data["ota_tasks"]
        self.ota_tasks = Table.restored(layout, [OtaTask(*row) for row in rows])
        self.ota_arns = data["ota_arns"]


def _state(ctx: Context) -> ManagedIntegrationsState:
    state: ManagedIntegrationsState = ctx.state
    return state


def _task(ctx: Context, task_id: str) -> OtaTask:
    task = _state(ctx).ota_tasks.get(task_id)
    if task is None:
        ctx.fail(
            "ResourceNotFoundException",
            f"OTA task {task_id!r} does not exist",
            ResourceId=task_id,
            ResourceType="OtaTask",
        )
    return task


# -------------------------------------------------------------------------------- OTA tasks
@handler(SERVICE, "CreateOtaTask")
def create_ota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create a task; the core has already replayed or refused a reused ``ClientToken``."""
    # OtaTaskId is ``[A-Za-z0-9]+``: a UUID without its dashes.
    task_id = uuid.uuid4().hex
    schedule = params.get("OtaSchedulingConfig") or {}
    task = OtaTask(
        task_id=task_id,
        task_arn=ctx.arn(f"ota-task/{task_id}"),
        s3_url=params["S3Url"],
        ota_type=params["OtaType"],
        # A task with a scheduled start waits for it; any other task rolls out at once.
        status="SCHEDULED" if schedule.get("StartTime") else "IN_PROGRESS",
        created_at=ctx.now,
        last_updated_at=ctx.now,
        fields={k: params[k] for k in _STORED if params.get(k) is not None},
        tags=dict(params.get("Tags") or {}),
    )
    state = _state(ctx)
    state.ota_tasks.put(task_id, task)
    state.ota_arns[task.task_arn] = task_id
    out = {"TaskId": task_id, "TaskArn": task.task_arn}
    if "Description" in task.fields:
        out["Description"] = task.fields["Description"]
    return out


@handler(SERVICE, "GetOtaTask")
def get_ota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Every stored member of a task, with its status and (simulated) processing details."""
    task = _task(ctx, params["Identifier"])
    targets = task.fields.get("Target") or []
    # Nothing executes in the emulator: targets of a running task wait in the queue.
    details: dict[str, Any] = dict.fromkeys(_COUNTERS, 0)
    details["numberOfQueuedThings"] = len(targets) if task.status == "IN_PROGRESS" else 0
    out: dict[str, Any] = {
        "TaskId": task.task_id,
        "TaskArn": task.task_arn,
        "S3Url": task.s3_url,
        "OtaType": task.ota_type,
        "Status": task.status,
        "CreatedAt": task.created_at,
        "LastUpdatedAt": task.last_updated_at,
        "TaskProcessingDetails": details,
        **task.fields,
    }
    if task.tags:  # TagsMap has min 1: no tags is no member
        out["Tags"] = dict(task.tags)
    return out


@handler(SERVICE, "ListOtaTasks")
def list_ota_tasks(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of task summaries in creation order."""
    tasks, token = ctx.page(_state(ctx).ota_tasks, params)
    items = []
    for task in tasks:
        item: dict[str, Any] = {
            "TaskId": task.task_id,
            "TaskArn": task.task_arn,
            "CreatedAt": task.created_at,
            "LastUpdatedAt": task.last_updated_at,
            "Status": task.status,
        }
        if "TaskConfigurationId" in task.fields:
            item["TaskConfigurationId"] = task.fields["TaskConfigurationId"]
        items.append(item)
    out: dict[str, Any] = {"Tasks": items}
    if token is not None:
        out["NextToken"] = token
    return out


@handler(SERVICE, "UpdateOtaTask")
def update_ota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Change a task's description and/or task configuration (the only updatable members)."""
    task = _task(ctx, params["Identifier"])
    for name in ("Description", "TaskConfigurationId"):
        if params.get(name) is not None:
            task.fields[name] = params[name]
    task.last_updated_at = ctx.now
    return {}


@handler(SERVICE, "DeleteOtaTask")
def delete_ota_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a task with its tags; a second delete is ResourceNotFound."""
    task = _task(ctx, params["Identifier"])
    state = _state(ctx)
    state.ota_tasks.delete(task.task_id)
    state.ota_arns.pop(task.task_arn, None)
    return {}


# -------------------------------------------------------------------------------- tagging
def _tagged_task(ctx: Context, params: dict[str, Any]) -> OtaTask | None:
    """The task a tagging request names, ``None`` when the ARN is not an OTA task's.

    :raises ApiError: ResourceNotFoundException for an OTA task ARN of this account and region
        that names no task
    """
    arn = params["ResourceArn"]
    task_id = ctx.id_for_arn(arn, ctx.arn("ota-task/"), _state(ctx).ota_arns, "OtaTask")
    return None if task_id is None else _task(ctx, task_id)


@handler(SERVICE, "ListTagsForResource")
def list_tags_for_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """An OTA task's tags (no member when it has none); other resources generically."""
    task = _tagged_task(ctx, params)
    if task is None:
        return generic_handler(ctx, params)
    return {"tags": dict(task.tags)} if task.tags else {}


@handler(SERVICE, "TagResource")
def tag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Add or overwrite an OTA task's tags (at most 50 in all: the operation's validation error)."""
    task = _tagged_task(ctx, params)
    if task is None:
        return generic_handler(ctx, params)
    merged = {**task.tags, **params["Tags"]}
    if len(merged) > MAX_TAGS:
        ctx.invalid(
            f"a resource can have at most {MAX_TAGS} tags, this request makes {len(merged)}"
        )
    task.tags = merged
    return {}


@handler(SERVICE, "UntagResource")
def untag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Remove tags from an OTA task (keys it does not have are ignored)."""
    task = _tagged_task(ctx, params)
    if task is None:
        return generic_handler(ctx, params)
    for key in params["TagKeys"]:
        task.tags.pop(key, None)
    return {}
