"""IoT's software package catalog: packages, their versions and the version lifecycle.

Every catalog operation declares ValidationException rather than IoT's InvalidRequestException,
and few declare ResourceNotFoundException, which shapes the answers below:

* CreatePackageVersion and ListPackageVersions on a package that does not exist answer
  ValidationException naming the package (neither declares a not-found error).
* DeletePackage and DeletePackageVersion of something that does not exist succeed, as AWS's
  deletes do when they declare no not-found error; deleting a package that still has versions, or
  the package's default version, is a ValidationException (the only error they declare).
* The lifecycle is AWS's: DRAFT -PUBLISH-> PUBLISHED -DEPRECATE-> DEPRECATED -PUBLISH->
  PUBLISHED. DRAFT -> DEPRECATED is refused with ConflictException (the version's state, not the
  request, is what is wrong); an action that asks for the state the version is already in
  succeeds without change, so that retries are harmless.
* Attributes, artifact and recipe can change only while the version is DRAFT (AWS's rule;
  ConflictException otherwise); the description can always change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.emulator._context import handler
from harness.emulator._state import Table, record_of

if TYPE_CHECKING:
    from harness.emulator._context import Context

__all__ = ["Package", "PackageCatalog", "PackageVersion"]

#: The combined size of a version's attributes (keys and values, UTF-8) AWS accepts.
ATTRIBUTES_MAX_BYTES = 3072

# (current status, requested status) pairs the lifecycle allows.
_TRANSITIONS = {("DRAFT", "PUBLISHED"), ("PUBLISHED", "DEPRECATED"), ("DEPRECATED", "PUBLISHED")}
_ACTIONS = {"PUBLISH": "PUBLISHED", "DEPRECATE": "DEPRECATED"}


@dataclass(slots=True, eq=False)
class PackageVersion:
    """One version of a package."""

    package: str
    name: str
    arn: str
    status: str
    created: float
    modified: float
    description: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    artifact: dict[str, Any] | None = None
    recipe: str | None = None


@dataclass(slots=True, eq=False)
class Package:
    """A software package, its versions and a per-status index of them."""

    name: str
    arn: str
    created: float
    modified: float
    description: str | None = None
    default_version: str | None = None
    versions: Table[str, PackageVersion] = field(default_factory=Table)
    # One table per status keeps ListPackageVersions(status=...) O(page).
    by_status: dict[str, Table[str, PackageVersion]] = field(default_factory=dict)

    def file(self, version: PackageVersion, status: str) -> None:
        """Move ``version`` to ``status`` in the status index."""
        old = self.by_status.get(version.status)
        if old is not None:
            old.delete(version.name)
        version.status = status
        self.by_status.setdefault(status, Table()).put(version.name, version)


class PackageCatalog:
    """The packages of one account and region."""

    __slots__ = ("packages", "version_count")

    def __init__(self) -> None:
        self.packages: Table[str, Package] = Table()
        self.version_count = 0

    def counts(self) -> dict[str, int]:
        """Packages and package versions."""
        return {"Package": len(self.packages), "PackageVersion": self.version_count}

    def dump(self) -> dict[str, Any]:
        """The catalog as plain data (for saving the emulator's state)."""
        return {
            "packages": (
                self.packages.layout(),
                [
                    (
                        *(p.name, p.arn, p.created, p.modified, p.description, p.default_version),
                        p.versions.layout(),
                        [record_of(v) for v in p.versions.values()],
                        {status: t.layout() for status, t in p.by_status.items()},
                    )
                    for p in self.packages.values()
                ],
            ),
            "version_count": self.version_count,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Fill this fresh catalog from what :meth:`dump` gave."""
        layout, rows = data["packages"]
        packages = []
        for row in rows:
            name, arn, created, modified, description, default_version = row[:6]
            version_layout, version_rows, by_status = row[6:]
            versions = [PackageVersion(*version) for version in version_rows]
            named = {version.name: version for version in versions}
            packages.append(
                Package(
                    name,
                    arn,
                    created,
                    modified,
                    description,
                    default_version,
                    versions=Table.restored(version_layout, versions),
                    by_status={
                        status: Table.restored(keys, [named[k] for k in keys if k is not None])
                        for status, keys in by_status.items()
                    },
                )
            )
        self.packages = Table.restored(layout, packages)
        self.version_count = data["version_count"]


def _catalog(ctx: Context) -> PackageCatalog:
    catalog: PackageCatalog = ctx.state.packages
    return catalog


def _check_attributes(ctx: Context, attributes: dict[str, str]) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
    if size > ATTRIBUTES_MAX_BYTES:
        ctx.invalid(
            f"The attributes total {size} bytes; a package version allows {ATTRIBUTES_MAX_BYTES}"
        )


def _version(ctx: Context, params: dict[str, Any]) -> tuple[Package, PackageVersion]:
    package = _catalog(ctx).packages.get(params["packageName"])
    version = package.versions.get(params["versionName"]) if package is not None else None
    if package is None or version is None:
        ctx.fail(
            "ResourceNotFoundException",
            f"Package version {params['packageName']}/{params['versionName']} does not exist",
        )
    return package, version


def _some(**members: Any) -> dict[str, Any]:
    """An output without the members that have no value (AWS omits them)."""
    return {k: v for k, v in members.items() if v is not None}


@handler("iot", "CreatePackage")
def create_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create a package; an existing name is a ConflictException."""
    packages = _catalog(ctx).packages
    name = params["packageName"]
    if name in packages:
        ctx.fail("ConflictException", f"Package {name} already exists", resourceId=name)
    package = Package(name, ctx.arn(f"package/{name}"), ctx.now, ctx.now, params.get("description"))
    packages.put(name, package)
    return _some(packageName=name, packageArn=package.arn, description=package.description)


@handler("iot", "GetPackage")
def get_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Describe a package, with its default version when one is set."""
    package = _catalog(ctx).packages.get(params["packageName"])
    if package is None:
        ctx.fail("ResourceNotFoundException", f"Package {params['packageName']} does not exist")
    return _some(
        packageName=package.name,
        packageArn=package.arn,
        description=package.description,
        defaultVersionName=package.default_version,
        creationDate=package.created,
        lastModifiedDate=package.modified,
    )


@handler("iot", "ListPackages")
def list_packages(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of packages, in creation order."""
    packages, token = ctx.page(_catalog(ctx).packages, params)
    summaries = [
        _some(
            packageName=p.name,
            defaultVersionName=p.default_version,
            creationDate=p.created,
            lastModifiedDate=p.modified,
        )
        for p in packages
    ]
    return _some(packageSummaries=summaries, nextToken=token)


@handler("iot", "UpdatePackage")
def update_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Change a package's description or default version.

    The default must be an existing version that is not a DRAFT (AWS lets published and
    deprecated versions be the default).
    """
    package = _catalog(ctx).packages.get(params["packageName"])
    if package is None:
        ctx.fail("ResourceNotFoundException", f"Package {params['packageName']} does not exist")
    default = params.get("defaultVersionName")
    if default is not None and params.get("unsetDefaultVersion"):
        ctx.invalid("defaultVersionName and unsetDefaultVersion=true cannot be used together")
    if default is not None:
        version = package.versions.get(default)
        if version is None:
            ctx.fail("ResourceNotFoundException", f"Package version {default} does not exist")
        if version.status == "DRAFT":
            ctx.fail(
                "ConflictException", f"Package version {default} is a DRAFT", resourceId=default
            )
        package.default_version = default
    elif params.get("unsetDefaultVersion"):
        package.default_version = None
    if "description" in params:
        package.description = params["description"]
    package.modified = ctx.now
    return {}


@handler("iot", "DeletePackage")
def delete_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a package that has no versions left (a missing package is already deleted)."""
    packages = _catalog(ctx).packages
    package = packages.get(params["packageName"])
    if package is not None:
        if len(package.versions):
            ctx.invalid(f"Package {package.name} still has versions; delete them first")
        packages.delete(package.name)
    return {}


@handler("iot", "CreatePackageVersion")
def create_package_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Create a DRAFT version of an existing package."""
    catalog = _catalog(ctx)
    package = catalog.packages.get(params["packageName"])
    if package is None:
        ctx.invalid(f"Package {params['packageName']} does not exist")
    name = params["versionName"]
    if name in package.versions:
        ctx.fail("ConflictException", f"Package version {name} already exists", resourceId=name)
    attributes = dict(params.get("attributes") or {})
    _check_attributes(ctx, attributes)
    version = PackageVersion(
        package=package.name,
        name=name,
        arn=ctx.arn(f"package/{package.name}/version/{name}"),
        status="DRAFT",
        created=ctx.now,
        modified=ctx.now,
        description=params.get("description"),
        attributes=attributes,
        artifact=params.get("artifact"),
        recipe=params.get("recipe"),
    )
    package.versions.put(name, version)
    package.by_status.setdefault("DRAFT", Table()).put(name, version)
    catalog.version_count += 1
    return _some(
        packageVersionArn=version.arn,
        packageName=package.name,
        versionName=name,
        description=version.description,
        attributes=version.attributes,
        status=version.status,
    )


@handler("iot", "GetPackageVersion")
def get_package_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Describe one version."""
    _, version = _version(ctx, params)
    return _some(
        packageVersionArn=version.arn,
        packageName=version.package,
        versionName=version.name,
        description=version.description,
        attributes=version.attributes,
        artifact=version.artifact,
        status=version.status,
        creationDate=version.created,
        lastModifiedDate=version.modified,
        recipe=version.recipe,
    )


@handler("iot", "ListPackageVersions")
def list_package_versions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """One page of a package's versions, optionally only those in one status."""
    package = _catalog(ctx).packages.get(params["packageName"])
    if package is None:
        ctx.invalid(f"Package {params['packageName']} does not exist")
    status = params.get("status")
    table = package.versions if status is None else package.by_status.get(status, Table())
    versions, token = ctx.page(table, params)
    summaries = [
        {
            "packageName": v.package,
            "versionName": v.name,
            "status": v.status,
            "creationDate": v.created,
            "lastModifiedDate": v.modified,
        }
        for v in versions
    ]
    return _some(packageVersionSummaries=summaries, nextToken=token)


@handler("iot", "UpdatePackageVersion")
def update_package_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Edit a version and move it through its lifecycle (see the module docstring)."""
    package, version = _version(ctx, params)
    action = params.get("action")
    target = _ACTIONS[action] if action is not None else version.status
    if target != version.status and (version.status, target) not in _TRANSITIONS:
        ctx.fail(
            "ConflictException",
            f"Package version {version.name} is {version.status}; {action} is not allowed",
            resourceId=version.name,
        )
    content = [m for m in ("attributes", "artifact", "recipe") if params.get(m) is not None]
    if content and version.status != "DRAFT":
        ctx.fail(
            "ConflictException",
            f"{', '.join(content)} can change only while the version is DRAFT, "
            f"and {version.name} is {version.status}",
            resourceId=version.name,
        )
    if params.get("attributes") is not None:
        attributes = dict(params["attributes"])
        _check_attributes(ctx, attributes)
        version.attributes = attributes
    if params.get("artifact") is not None:
        version.artifact = params["artifact"]
    if params.get("recipe") is not None:
        version.recipe = params["recipe"]
    if "description" in params:
        version.description = params["description"]
    if target != version.status:
        package.file(version, target)
    version.modified = ctx.now
    return {}


@handler("iot", "DeletePackageVersion")
def delete_package_version(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a version that is not the package's default (a missing one is already deleted)."""
    catalog = _catalog(ctx)
    package = catalog.packages.get(params["packageName"])
    name = params["versionName"]
    if package is None or name not in package.versions:
        return {}
    if package.default_version == name:
        ctx.invalid(f"{name} is the default version of {package.name}; unset it first")
    version = package.versions.delete(name)
    if version is not None:
        package.by_status[version.status].delete(name)
        catalog.version_count -= 1
    return {}
