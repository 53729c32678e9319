"""State machines for Greengrass deployments, Proton templates, FUOTA tasks and OTA tasks.

The reference models follow the API references: a new deployment for a target is its next
revision and supersedes the previous one (ACTIVE becomes INACTIVE); only an ACTIVE deployment can
be canceled, and only an inactive one deleted. A Proton version without ``majorVersion`` opens the
next major at minor 0, with one the next minor of that (existing) major, and numbers are never
reused; a template goes only once its versions are gone. FUOTA and OTA tasks keep what they were
created and updated with.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, multiple, precondition, rule

from harness.fuzz._stateful import ContractMachine

__all__ = ["MACHINES", "DeploymentsMachine", "FuotaMachine", "OtaMachine", "TemplatesMachine"]

_LABELS = st.sampled_from(["a", "b"])
_PAGES = st.sampled_from([1, 2, 100])
_TEXT = st.sampled_from(["one", "two"])


class DeploymentsMachine(ContractMachine):
    """Greengrass V2 deployments: revisions per target, cancel and delete rules."""

    service = "greengrassv2"
    creates = "CreateDeployment"
    deployments = Bundle("deployments")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, dict[str, Any]] = {}
        self.revisions: dict[str, int] = {}
        self.known: set[str] = set()

    def _target(self, label: str, group: bool) -> str:
        kind = "thinggroup" if group else "thing"
        region = self.ctx.session.region
        return f"arn:aws:iot:{region}:123456789012:{kind}/{self.prefix}{label}"

    @rule(target=deployments, label=_LABELS, group=st.booleans())
    def create(self, label: str, group: bool) -> Any:
        target = self._target(label, group)
        params = {"targetArn": target, "deploymentName": f"{self.prefix}{label}"}
        reply = self.call("CreateDeployment", params)
        self.expect_answer("CreateDeployment", reply, None)
        deployment_id = str((reply.output or {}).get("deploymentId"))
        for item in self.model.values():
            if item["targetArn"] == target and item["isLatestForTarget"]:
                item["isLatestForTarget"] = False
                if item["deploymentStatus"] == "ACTIVE":
                    item["deploymentStatus"] = "INACTIVE"
        self.revisions[target] = self.revisions.get(target, 0) + 1
        self.model[deployment_id] = {
            "targetArn": target,
            "revisionId": str(self.revisions[target]),
            "deploymentStatus": "ACTIVE",
            "isLatestForTarget": True,
            "deploymentName": params["deploymentName"],
        }
        self.known.add(deployment_id)
        self.get(deployment_id)
        return deployment_id

    @rule(deployment=deployments)
    def get(self, deployment: str) -> None:
        reply = self.call("GetDeployment", {"deploymentId": deployment})
        if deployment not in self.model:
            self.expect_answer("GetDeployment", reply, "ResourceNotFoundException")
            return
        self.expect_answer("GetDeployment", reply, None)
        self.expect_fields("GetDeployment", reply, reply.output or {}, self.model[deployment])

    @rule(deployment=deployments)
    def cancel(self, deployment: str) -> None:
        reply = self.call("CancelDeployment", {"deploymentId": deployment})
        item = self.model.get(deployment)
        if item is None:
            self.expect_answer("CancelDeployment", reply, "ResourceNotFoundException")
            return
        active = item["deploymentStatus"] == "ACTIVE"
        self.expect_answer("CancelDeployment", reply, None if active else "ConflictException")
        if active:
            item["deploymentStatus"] = "CANCELED"

    @rule(deployment=deployments)
    def delete(self, deployment: str) -> None:
        reply = self.call("DeleteDeployment", {"deploymentId": deployment})
        item = self.model.get(deployment)
        if item is None:
            self.expect_answer("DeleteDeployment", reply, "ResourceNotFoundException")
            return
        active = item["deploymentStatus"] == "ACTIVE"
        self.expect_answer("DeleteDeployment", reply, "ConflictException" if active else None)
        if not active:
            del self.model[deployment]

    @rule(label=_LABELS, group=st.booleans(), latest=st.booleans(), page=_PAGES)
    def list_target(self, label: str, group: bool, latest: bool, page: int) -> None:
        target = self._target(label, group)
        history = "LATEST_ONLY" if latest else "ALL"
        params = {"targetArn": target, "historyFilter": history}
        items = self.listing("ListDeployments", params, page, lambda d: str(d.get("deploymentId")))
        expected = {
            key: item
            for key, item in self.model.items()
            if item["targetArn"] == target and (item["isLatestForTarget"] or not latest)
        }
        listed = [str(d.get("deploymentId")) for d in items]
        self.expect_listed("ListDeployments", listed, expected, known=self.known)
        for summary in items:
            found = expected.get(str(summary.get("deploymentId")))
            if found is not None:
                self.expect_fields("ListDeployments", self.last_reply, summary, found)

    @rule()
    def made_up_token(self) -> None:
        self.bad_token("ListDeployments", {})

    def teardown(self) -> None:
        for deployment in self.model:
            self.quietly("CancelDeployment", {"deploymentId": deployment})
            self.quietly("DeleteDeployment", {"deploymentId": deployment})


class TemplatesMachine(ContractMachine):
    """Proton environment templates and their major/minor versions."""

    service = "proton"
    creates = "CreateEnvironmentTemplate"

    def __init__(self) -> None:
        super().__init__()
        #: template -> {"majors": {major: {minor, ...}}, "last_major": n, "last_minor": {...}}
        self.templates: dict[str, dict[str, Any]] = {}

    def _name(self, label: str) -> str:
        return f"{self.prefix}{label}"

    @rule(label=_LABELS)
    def create_template(self, label: str) -> None:
        name = self._name(label)
        reply = self.call("CreateEnvironmentTemplate", {"name": name})
        exists = name in self.templates
        self.expect_answer(
            "CreateEnvironmentTemplate", reply, "ConflictException" if exists else None
        )
        if not exists:
            self.templates[name] = {"majors": {}, "last_major": 0, "last_minor": {}}
            got = self.call("GetEnvironmentTemplate", {"name": name})
            self.expect_answer("GetEnvironmentTemplate", got, None)
            template = (got.output or {}).get("environmentTemplate") or {}
            self.expect_fields("GetEnvironmentTemplate", got, template, {"name": name})

    @rule(label=_LABELS)
    def delete_template(self, label: str) -> None:
        name = self._name(label)
        reply = self.call("DeleteEnvironmentTemplate", {"name": name})
        model = self.templates.get(name)
        if model is None:
            self.expect_answer("DeleteEnvironmentTemplate", reply, "ResourceNotFoundException")
            return
        busy = bool(model["majors"])
        self.expect_answer(
            "DeleteEnvironmentTemplate", reply, "ConflictException" if busy else None
        )
        if not busy:
            del self.templates[name]

    @rule(label=_LABELS, major=st.sampled_from([None, 1, 2, 3]))
    def create_version(self, label: str, major: int | None) -> None:
        name = self._name(label)
        params: dict[str, Any] = {
            "templateName": name,
            "source": {"s3": {"bucket": "fz-bucket", "key": "template.tar.gz"}},
        }
        if major is not None:
            params["majorVersion"] = str(major)
        reply = self.call("CreateEnvironmentTemplateVersion", params)
        model = self.templates.get(name)
        if model is None or (major is not None and major not in model["majors"]):
            self.expect_answer(
                "CreateEnvironmentTemplateVersion", reply, "ResourceNotFoundException"
            )
            return
        self.expect_answer("CreateEnvironmentTemplateVersion", reply, None)
        if major is None:
            major = model["last_major"] = model["last_major"] + 1
            minor = 0
        else:
            minor = model["last_minor"][major] + 1
        model["last_minor"][major] = minor
        model["majors"].setdefault(major, set()).add(minor)
        version = (reply.output or {}).get("environmentTemplateVersion") or {}
        numbers = {"majorVersion": str(major), "minorVersion": str(minor), "templateName": name}
        self.expect_fields("CreateEnvironmentTemplateVersion", reply, version, numbers)
        status = version.get("status")
        registering = status in ("REGISTRATION_IN_PROGRESS", "DRAFT")
        self.expect(
            registering, "CreateEnvironmentTemplateVersion", f"a new version is {status!r}", reply
        )

    @precondition(lambda self: any(t["majors"] for t in self.templates.values()))
    @rule(data=st.data(), delete=st.booleans())
    def version(self, data: st.DataObject, delete: bool) -> None:
        name = data.draw(
            st.sampled_from(sorted(n for n, t in self.templates.items() if t["majors"]))
        )
        majors = self.templates[name]["majors"]
        major = data.draw(st.sampled_from(sorted(majors)))
        minor = data.draw(st.sampled_from([*sorted(majors[major]), max(majors[major]) + 1]))
        keys = {"templateName": name, "majorVersion": str(major), "minorVersion": str(minor)}
        operation = (
            "DeleteEnvironmentTemplateVersion" if delete else "GetEnvironmentTemplateVersion"
        )
        reply = self.call(operation, keys)
        if minor not in majors[major]:
            self.expect_answer(operation, reply, "ResourceNotFoundException")
            return
        self.expect_answer(operation, reply, None)
        version = (reply.output or {}).get("environmentTemplateVersion") or {}
        self.expect_fields(operation, reply, version, keys)
        if delete:
            majors[major].discard(minor)
            if not majors[major]:
                del majors[major]

    @precondition(lambda self: bool(self.templates))
    @rule(data=st.data(), page=_PAGES)
    def list_versions(self, data: st.DataObject, page: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.templates)))
        items = self.listing(
            "ListEnvironmentTemplateVersions",
            {"templateName": name},
            page,
            lambda v: f"{v.get('majorVersion')}.{v.get('minorVersion')}",
        )
        listed = {f"{v.get('majorVersion')}.{v.get('minorVersion')}" for v in items}
        majors = self.templates[name]["majors"]
        expected = {f"{major}.{minor}" for major, minors in majors.items() for minor in minors}
        message = f"listed versions {sorted(listed)!r} where the model has {sorted(expected)!r}"
        self.expect(listed == expected, "ListEnvironmentTemplateVersions", message, None)

    @rule(page=_PAGES)
    def list_templates(self, page: int) -> None:
        items = self.listing("ListEnvironmentTemplates", {}, page, lambda t: str(t.get("name")))
        listed = [str(t.get("name")) for t in items]
        self.expect_listed("ListEnvironmentTemplates", listed, self.templates)

    @rule()
    def made_up_token(self) -> None:
        self.bad_token("ListEnvironmentTemplates", {})

    def teardown(self) -> None:
        for name, model in self.templates.items():
            for major, minors in model["majors"].items():
                for minor in sorted(minors, reverse=True):
                    keys = {"templateName": name, "majorVersion": str(major)}
                    self.quietly(
                        "DeleteEnvironmentTemplateVersion", {**keys, "minorVersion": str(minor)}
                    )
            self.quietly("DeleteEnvironmentTemplate", {"name": name})


class _TaskMachine(ContractMachine):
    """A task resource: create, get, update, delete, list by id (FUOTA and OTA tasks)."""

    tasks = Bundle("tasks")
    #: operations and members, set by the subclasses
    get_op: str
    update_op: str
    delete_op: str
    list_op: str
    id_member: str
    list_id: str
    #: what every task is created with (besides the description)
    base: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, dict[str, Any]] = {}
        self.known: set[str] = set()

    def created_id(self, output: dict[str, Any]) -> str:
        return str(output.get(self.id_member))

    @rule(target=tasks, description=_TEXT)
    def create(self, description: str) -> Any:
        params = {**self.base, "Description": description}
        reply = self.call(self.creates, params)
        self.expect_answer(self.creates, reply, None)
        if not reply.ok:
            return multiple()
        task = self.created_id(reply.output or {})
        self.model[task] = params
        self.known.add(task)
        self.get(task)
        return task

    @rule(task=tasks)
    def get(self, task: str) -> None:
        reply = self.call(self.get_op, {self.id_member_in: task})
        if task not in self.model:
            self.expect_answer(self.get_op, reply, "ResourceNotFoundException")
            return
        self.expect_answer(self.get_op, reply, None)
        self.expect_fields(self.get_op, reply, reply.output or {}, self.model[task])

    @rule(task=tasks, description=_TEXT)
    def update(self, task: str, description: str) -> None:
        reply = self.call(self.update_op, {self.id_member_in: task, "Description": description})
        if task not in self.model:
            self.expect_answer(self.update_op, reply, "ResourceNotFoundException")
            return
        self.expect_answer(self.update_op, reply, None)
        self.model[task]["Description"] = description

    @rule(task=tasks)
    def delete(self, task: str) -> None:
        reply = self.call(self.delete_op, {self.id_member_in: task})
        found = self.model.pop(task, None)
        self.expect_answer(self.delete_op, reply, None if found else "ResourceNotFoundException")

    @rule(page=_PAGES)
    def list_tasks(self, page: int) -> None:
        items = self.listing(self.list_op, {}, page, lambda t: str(t.get(self.list_id)))
        listed = [str(t.get(self.list_id)) for t in items]
        self.expect_listed(self.list_op, listed, self.model, known=self.known)

    @rule()
    def made_up_token(self) -> None:
        self.bad_token(self.list_op, {})

    def teardown(self) -> None:
        for task in self.model:
            self.quietly(self.delete_op, {self.id_member_in: task})

    id_member_in: str


class FuotaMachine(_TaskMachine):
    """IoT Wireless FUOTA tasks."""

    service = "iotwireless"
    creates = "CreateFuotaTask"
    get_op, update_op, delete_op, list_op = (
        "GetFuotaTask",
        "UpdateFuotaTask",
        "DeleteFuotaTask",
        "ListFuotaTasks",
    )
    id_member = id_member_in = list_id = "Id"

    def __init__(self) -> None:
        super().__init__()
        self.base = {
            "Name": f"{self.prefix}task",
            "FirmwareUpdateImage": "s3://fz-bucket/firmware.bin",
            "FirmwareUpdateRole": "arn:aws:iam::123456789012:role/fz-fuota",
        }


class OtaMachine(_TaskMachine):
    """Managed integrations OTA tasks."""

    service = "iot-managed-integrations"
    creates = "CreateOtaTask"
    get_op, update_op, delete_op, list_op = (
        "GetOtaTask",
        "UpdateOtaTask",
        "DeleteOtaTask",
        "ListOtaTasks",
    )
    id_member = list_id = "TaskId"
    id_member_in = "Identifier"
    base = {"S3Url": "s3://fz-bucket/firmware.bin", "OtaType": "ONE_TIME"}


MACHINES: tuple[type[ContractMachine], ...] = (
    DeploymentsMachine,
    TemplatesMachine,
    FuotaMachine,
    OtaMachine,
)
