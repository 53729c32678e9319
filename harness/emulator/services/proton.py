"""Proton environment templates and their major/minor versions.

Semantics (from the Proton API reference and the CreateEnvironmentTemplateVersion seed):

* a template is keyed by its name; creating an existing name is a ConflictException; deleting a
  template that still has versions is a ConflictException (AWS: "If no other major or minor
  versions of an environment template exist, delete the environment template");
* a version created without ``majorVersion`` opens the next major ("1", "2", ...) at minor "0";
  with ``majorVersion`` it is the next minor of that major, which must exist
  (ResourceNotFoundException otherwise: the major is addressed like a resource, as GetEnvironment
  TemplateVersion addresses a version). Numbers are never reused, even after deletes, so that an
  ARN never names two different versions;
* a new version is ``REGISTRATION_IN_PROGRESS`` and becomes ``DRAFT`` once
  ``settings.proton_registration_delay`` seconds have passed since its creation. Nothing runs in
  the background: the status is settled lazily whenever a version is read, against the delay in
  force at that moment, and then stays settled;
* UpdateEnvironmentTemplateVersion moves ``DRAFT`` to ``PUBLISHED`` (ConflictException while
  registering or to go back from ``PUBLISHED`` to ``DRAFT``; clients may not set the
  ``REGISTRATION_*`` statuses: ValidationException). Publishing makes the version its major's
  ``recommendedMinorVersion`` and, when it is the highest published version, the template's
  ``recommendedVersion``;
* a recommended version can only be deleted when it is the last one of its major (the template's
  recommended one: the last version of the template), as the DeleteEnvironmentTemplateVersion
  reference describes; otherwise ConflictException.

The state subclasses :class:`GenericState` so that the Proton operations left generic keep their
model-driven tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.emulator._context import Context, handler, service_state
from harness.emulator._generic import GenericState
from harness.emulator._state import Table, record_of

__all__ = ["EnvironmentTemplate", "ProtonState", "TemplateVersion"]

_SERVICE = "proton"
_IN_PROGRESS = "REGISTRATION_IN_PROGRESS"
_DRAFT = "DRAFT"
_PUBLISHED = "PUBLISHED"


@dataclass(slots=True)
class TemplateVersion:
    """One minor version of an environment template."""

    template: str
    major: int
    minor: int
    arn: str
    created: float
    modified: float
    status: str = _IN_PROGRESS
    description: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class EnvironmentTemplate:
    """An environment template with its versions.

    :param versions: every version in creation order, keyed by ``(major, minor)``
    :param majors: the versions of each major, keyed by minor (for the ``majorVersion`` filter)
    :param last_minor: the last minor number handed out per major (numbers are not reused)
    :param recommended_minor: the highest published minor of each major
    """

    name: str
    arn: str
    created: float
    modified: float
    params: dict[str, Any]
    versions: Table[tuple[int, int], TemplateVersion] = field(default_factory=Table)
    majors: dict[int, Table[int, TemplateVersion]] = field(default_factory=dict)
    last_major: int = 0
    last_minor: dict[int, int] = field(default_factory=dict)
    recommended_minor: dict[int, int] = field(default_factory=dict)
    recommended: tuple[int, int] | None = None

    def describe(self, summary: bool = False) -> dict[str, Any]:
        """The ``EnvironmentTemplate`` structure, or with ``summary`` its summary."""
        out: dict[str, Any] = {
            "arn": self.arn,
            "createdAt": self.created,
            "lastModifiedAt": self.modified,
            "name": self.name,
        }
        echoed = ("description", "displayName", "provisioning")
        for key in echoed if summary else (*echoed, "encryptionKey"):
            if self.params.get(key) is not None:
                out[key] = self.params[key]
        if self.recommended is not None:
            out["recommendedVersion"] = f"{self.recommended[0]}.{self.recommended[1]}"
        return out

    def describe_version(self, version: TemplateVersion) -> dict[str, Any]:
        """The ``EnvironmentTemplateVersion`` structure (its summary has the same members here)."""
        out: dict[str, Any] = {
            "arn": version.arn,
            "createdAt": version.created,
            "lastModifiedAt": version.modified,
            "majorVersion": str(version.major),
            "minorVersion": str(version.minor),
            "status": version.status,
            "templateName": self.name,
        }
        if version.description is not None:
            out["description"] = version.description
        recommended = self.recommended_minor.get(version.major)
        if recommended is not None:
            out["recommendedMinorVersion"] = str(recommended)
        return out


@service_state(_SERVICE)
class ProtonState(GenericState):
    """Environment templates of one account and region."""

    def __init__(self) -> None:
        super().__init__()
        self.templates: Table[str, EnvironmentTemplate] = Table()
        #: versions over all templates, kept as a counter so that stats stay O(1)
        self.version_count = 0

    def counts(self) -> dict[str, int]:
        """Resources per type (the generic ones, templates and template versions)."""
        counts = super().counts()
        if len(self.templates):
            counts["EnvironmentTemplate"] = len(self.templates)
        if self.version_count:
            counts["EnvironmentTemplateVersion"] = self.version_count
        return counts

    def dump(self) -> dict[str, Any]:
        """The state as plain data."""
        data = super().dump()
        data["templates"] = (
            self.templates.layout(),
            [
                (
                    *(t.name, t.arn, t.created, t.modified, t.params),
                    t.versions.layout(),
                    [record_of(v) for v in t.versions.values()],
                    {major: minors.layout() for major, minors in t.majors.items()},
                    *(t.last_major, t.last_minor, t.recommended_minor, t.recommended),
                )
                for t in self.templates.values()
            ],
        )
        data["version_count"] = self.version_count
        return data

    def restore(self, data: dict[str, Any]) -> None:
        """Fill this fresh instance from what :meth:`dump` gave."""
        super().restore(data)
        layout, rows = data["templates"]
        templates = []
        for row in rows:
            name, arn, created, modified, params, version_layout, version_rows, majors = row[:8]
            versions = [TemplateVersion(*v) for v in version_rows]
            keyed = {(v.major, v.minor): v for v in versions}
            templates.append(
                EnvironmentTemplate(
                    name,
                    arn,
                    created,
                    modified,
                    params,
                    Table.restored(version_layout, versions),
                    {
                        major: Table.restored(
                            minors, [keyed[major, m] for m in minors if m is not None]
                        )
                        for major, minors in majors.items()
                    },
                    *row[8:],
                )
            )
        self.templates = Table.restored(layout, templates)
        self.version_count = data["version_count"]


def _state(ctx: Context) -> ProtonState:
    state = ctx.state
    assert isinstance(state, ProtonState)
    return state


def _template(ctx: Context, name: str) -> EnvironmentTemplate:
    found = _state(ctx).templates.get(name)
    if found is None:
        ctx.fail("ResourceNotFoundException", f"Environment template {name!r} does not exist")
    return found


def _settle(ctx: Context, version: TemplateVersion) -> TemplateVersion:
    """Finish the registration of ``version`` when its delay has passed (lazily, on read)."""
    if version.status == _IN_PROGRESS:
        done_at = version.created + ctx.settings.proton_registration_delay
        if ctx.now >= done_at:
            version.status = _DRAFT
            version.modified = done_at
    return version


def _version(ctx: Context, params: dict[str, Any]) -> tuple[EnvironmentTemplate, TemplateVersion]:
    template = _template(ctx, params["templateName"])
    key = (int(params["majorVersion"]), int(params["minorVersion"]))
    found = template.versions.get(key)
    if found is None:
        ctx.fail(
            "ResourceNotFoundException",
            f"Environment template {template.name!r} has no version {key[0]}.{key[1]}",
        )
    return template, _settle(ctx, found)


# ------------------------------------------------------------------------------ templates
@handler(_SERVICE, "CreateEnvironmentTemplate")
def create_environment_template(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create a template.

    :raises ApiError: ConflictException when a template of that name exists
    """
    state = _state(ctx)
    name: str = params["name"]
    if name in state.templates:
        ctx.fail("ConflictException", f"Environment template {name!r} already exists")
    template = EnvironmentTemplate(
        name=name,
        arn=ctx.arn(f"environment-template/{name}"),
        created=ctx.now,
        modified=ctx.now,
        params={k: v for k, v in params.items() if k != "name" and v is not None},
    )
    state.templates.put(name, template)
    return {"environmentTemplate": template.describe()}


@handler(_SERVICE, "GetEnvironmentTemplate")
def get_environment_template(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One template.

    :raises ApiError: ResourceNotFoundException for an unknown name
    """
    return {"environmentTemplate": _template(ctx, params["name"]).describe()}


@handler(_SERVICE, "ListEnvironmentTemplates")
def list_environment_templates(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of template summaries, in creation order."""
    items, token = ctx.page(_state(ctx).templates, params)
    out: dict[str, Any] = {"templates": [t.describe(summary=True) for t in items]}
    if token is not None:
        out["nextToken"] = token
    return out


@handler(_SERVICE, "UpdateEnvironmentTemplate")
def update_environment_template(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Change a template's description or display name.

    :raises ApiError: ResourceNotFoundException for an unknown name
    """
    template = _template(ctx, params["name"])
    for key in ("description", "displayName"):
        if params.get(key) is not None:
            template.params[key] = params[key]
    template.modified = ctx.now
    return {"environmentTemplate": template.describe()}


@handler(_SERVICE, "DeleteEnvironmentTemplate")
def delete_environment_template(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a template that has no versions left.

    :raises ApiError: ResourceNotFoundException for an unknown name; ConflictException while the
        template still has versions
    """
    template = _template(ctx, params["name"])
    if len(template.versions):
        ctx.fail(
            "ConflictException",
            f"Environment template {template.name!r} still has {len(template.versions)} "
            "version(s); delete them first",
        )
    _state(ctx).templates.delete(template.name)
    return {"environmentTemplate": template.describe()}


# ------------------------------------------------------------------------------- versions
@handler(_SERVICE, "CreateEnvironmentTemplateVersion")
def create_environment_template_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create the next minor of ``majorVersion``, or a new major at minor 0 without it.

    Client tokens are handled by the pipeline: a repeat with the same token and parameters
    answers the first response again.

    :raises ApiError: ResourceNotFoundException for an unknown template, or a ``majorVersion``
        the template does not have
    """
    template = _template(ctx, params["templateName"])
    requested = params.get("majorVersion")
    if requested is None:
        major = template.last_major = template.last_major + 1
        minor = 0
    else:
        major = int(requested)
        if major not in template.majors:
            ctx.fail(
                "ResourceNotFoundException",
                f"Environment template {template.name!r} has no major version {requested}",
            )
        minor = template.last_minor[major] + 1
    template.last_minor[major] = minor
    version = TemplateVersion(
        template=template.name,
        major=major,
        minor=minor,
        arn=ctx.arn(f"environment-template/{template.name}:{major}.{minor}"),
        created=ctx.now,
        modified=ctx.now,
        description=params.get("description"),
        source=params["source"],
        tags=params.get("tags") or [],
    )
    template.versions.put((major, minor), version)
    _state(ctx).version_count += 1
    minors = template.majors.get(major)
    if minors is None:
        minors = template.majors[major] = Table()
    minors.put(minor, version)
    # A zero delay registers at once, so even the create answer can say DRAFT.
    return {"environmentTemplateVersion": template.describe_version(_settle(ctx, version))}


@handler(_SERVICE, "GetEnvironmentTemplateVersion")
def get_environment_template_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One version, with its registration settled.

    :raises ApiError: ResourceNotFoundException for an unknown template or version
    """
    template, version = _version(ctx, params)
    return {"environmentTemplateVersion": template.describe_version(version)}


@handler(_SERVICE, "ListEnvironmentTemplateVersions")
def list_environment_template_versions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of a template's versions (of one major with ``majorVersion``), oldest first.

    :raises ApiError: ResourceNotFoundException for an unknown template
    """
    template = _template(ctx, params["templateName"])
    requested = params.get("majorVersion")
    table: Table[Any, TemplateVersion]
    if requested is None:
        table = template.versions
    else:
        table = template.majors.get(int(requested)) or Table()
    items, token = ctx.page(table, params)
    out: dict[str, Any] = {
        "templateVersions": [template.describe_version(_settle(ctx, v)) for v in items]
    }
    if token is not None:
        out["nextToken"] = token
    return out


@handler(_SERVICE, "UpdateEnvironmentTemplateVersion")
def update_environment_template_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Change a version's description, or publish a draft.

    :raises ApiError: ResourceNotFoundException for an unknown template or version;
        ValidationException for a ``REGISTRATION_*`` status; ConflictException for a version
        still registering, or to move a published version back to DRAFT
    """
    template, version = _version(ctx, params)
    status: str | None = params.get("status")
    if status is not None and status not in (_DRAFT, _PUBLISHED):
        ctx.invalid(f"The status of a template version can't be set to {status}")
    if status is not None and status != version.status:
        if version.status != _DRAFT:
            ctx.fail(
                "ConflictException",
                f"Version {version.major}.{version.minor} of {template.name!r} is "
                f"{version.status}; only a DRAFT version can change to {status}",
            )
        version.status = status
        # Publishing: the highest published minor is recommended within its major, the highest
        # published version within the template.
        best = template.recommended_minor.get(version.major, -1)
        template.recommended_minor[version.major] = max(best, version.minor)
        key = (version.major, version.minor)
        if template.recommended is None or key > template.recommended:
            template.recommended = key
            template.modified = ctx.now
    if params.get("description") is not None:
        version.description = params["description"]
    version.modified = ctx.now
    return {"environmentTemplateVersion": template.describe_version(version)}


@handler(_SERVICE, "DeleteEnvironmentTemplateVersion")
def delete_environment_template_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a version, unless it is a recommended one with siblings.

    :raises ApiError: ResourceNotFoundException for an unknown template or version;
        ConflictException for the recommended minor of a major that has other minors, or the
        template's recommended version while the template has other versions
    """
    template, version = _version(ctx, params)
    key = (version.major, version.minor)
    minors = template.majors[version.major]
    if template.recommended == key and len(template.versions) > 1:
        ctx.fail(
            "ConflictException",
            f"Version {key[0]}.{key[1]} is the recommended version of {template.name!r}; it can "
            "only be deleted as the template's last version",
        )
    if template.recommended_minor.get(version.major) == version.minor and len(minors) > 1:
        ctx.fail(
            "ConflictException",
            f"Version {key[0]}.{key[1]} is the recommended minor version of major {key[0]}; it "
            "can only be deleted as the last minor version of that major",
        )
    out = {"environmentTemplateVersion": template.describe_version(version)}
    template.versions.delete(key)
    _state(ctx).version_count -= 1
    minors.delete(version.minor)
    if not len(minors):
        del template.majors[version.major]
        # The only published minor of that major just went, and with it the recommendation.
        template.recommended_minor.pop(version.major, None)
    if template.recommended == key:
        template.recommended = None
    return out
