"""State machines for IoT: things, thing groups and membership; packages and their versions.

The reference model is AWS's documented behaviour: creating a thing or group again with the same
configuration answers the existing one (another configuration: ResourceAlreadyExistsException);
deleting something absent succeeds; an update without ``merge`` replaces the attributes and an
empty value removes one; package versions move DRAFT -> PUBLISHED <-> DEPRECATED.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from harness.fuzz._stateful import ContractMachine

__all__ = ["MACHINES", "PackagesMachine", "ThingsMachine"]

_LABELS = st.sampled_from(["a", "b", "c"])
_PAGES = st.sampled_from([1, 2, 3, 100])
# Things without a type have at most 3 attributes: the machine's marker and two of these.
_ATTRS = st.dictionaries(st.sampled_from(["color", "zone"]), st.sampled_from(["red", "blue"]))
_EDITS = st.dictionaries(st.sampled_from(["color", "zone"]), st.sampled_from(["red", "blue", ""]))
_ANY_ERROR = "an error"


class ThingsMachine(ContractMachine):
    """Things, thing groups and membership against dicts of names."""

    service = "iot"
    creates = "CreateThing"

    def __init__(self) -> None:
        super().__init__()
        self.things: dict[str, dict[str, str]] = {}
        self.groups: dict[str, set[str]] = {}
        # Every thing carries this attribute, so that ListThings can filter on it server-side.
        self.marker = {"fzrun": self.prefix.rstrip("-")}

    def _name(self, label: str) -> str:
        return f"{self.prefix}{label}"

    @rule(label=_LABELS, attrs=_ATTRS)
    def create_thing(self, label: str, attrs: dict[str, str]) -> None:
        name, attributes = self._name(label), {**attrs, **self.marker}
        params = {"thingName": name, "attributePayload": {"attributes": attributes}}
        reply = self.call("CreateThing", params)
        clash = name in self.things and self.things[name] != attributes
        self.expect_answer(
            "CreateThing", reply, "ResourceAlreadyExistsException" if clash else None
        )
        if clash:
            return
        self.things.setdefault(name, attributes)
        created = reply.output or {}
        described = self.call("DescribeThing", {"thingName": name})
        self.expect_answer("DescribeThing", described, None)
        expected: dict[str, Any] = {"thingName": name, "attributes": self.things[name]}
        expected |= {k: created.get(k) for k in ("thingArn", "thingId")}
        self.expect_fields("DescribeThing", described, described.output or {}, expected)

    @rule(label=_LABELS)
    def describe_thing(self, label: str) -> None:
        name = self._name(label)
        reply = self.call("DescribeThing", {"thingName": name})
        if name not in self.things:
            self.expect_answer("DescribeThing", reply, "ResourceNotFoundException")
            return
        self.expect_answer("DescribeThing", reply, None)
        expected = {"thingName": name, "attributes": self.things[name]}
        self.expect_fields("DescribeThing", reply, reply.output or {}, expected)

    @rule(label=_LABELS, edits=_EDITS, merge=st.booleans())
    def update_thing(self, label: str, edits: dict[str, str], merge: bool) -> None:
        name = self._name(label)
        attributes = edits if merge else {**edits, **self.marker}
        payload = {"attributes": attributes, "merge": merge}
        reply = self.call("UpdateThing", {"thingName": name, "attributePayload": payload})
        if name not in self.things:
            self.expect_answer("UpdateThing", reply, "ResourceNotFoundException")
            return
        self.expect_answer("UpdateThing", reply, None)
        merged = {**(self.things[name] if merge else {}), **attributes}
        self.things[name] = {k: v for k, v in merged.items() if v != ""}

    @rule(label=_LABELS)
    def delete_thing(self, label: str) -> None:
        name = self._name(label)
        self.expect_answer("DeleteThing", self.call("DeleteThing", {"thingName": name}), None)
        self.things.pop(name, None)
        for members in self.groups.values():
            members.discard(name)

    @rule(label=_LABELS)
    def create_group(self, label: str) -> None:
        name = self._name(f"g{label}")
        reply = self.call("CreateThingGroup", {"thingGroupName": name})
        self.expect_answer("CreateThingGroup", reply, None)
        self.groups.setdefault(name, set())
        described = self.call("DescribeThingGroup", {"thingGroupName": name})
        self.expect_answer("DescribeThingGroup", described, None)
        expected = {k: (reply.output or {}).get(k) for k in ("thingGroupArn", "thingGroupId")}
        self.expect_fields(
            "DescribeThingGroup",
            described,
            described.output or {},
            {"thingGroupName": name, **expected},
        )

    @rule(label=_LABELS)
    def delete_group(self, label: str) -> None:
        name = self._name(f"g{label}")
        reply = self.call("DeleteThingGroup", {"thingGroupName": name})
        self.expect_answer("DeleteThingGroup", reply, None)
        self.groups.pop(name, None)

    @rule(thing=_LABELS, group=_LABELS, adding=st.booleans())
    def membership(self, thing: str, group: str, adding: bool) -> None:
        operation = "AddThingToThingGroup" if adding else "RemoveThingFromThingGroup"
        name, group_name = self._name(thing), self._name(f"g{group}")
        reply = self.call(operation, {"thingName": name, "thingGroupName": group_name})
        if name not in self.things or group_name not in self.groups:
            self.expect_answer(operation, reply, "ResourceNotFoundException")
            return
        self.expect_answer(operation, reply, None)
        (self.groups[group_name].add if adding else self.groups[group_name].discard)(name)

    @rule(page=_PAGES)
    def list_things(self, page: int) -> None:
        ((key, value),) = self.marker.items()
        params = {"attributeName": key, "attributeValue": value}
        items = self.listing("ListThings", params, page, lambda t: str(t.get("thingName")))
        self.expect_listed("ListThings", [str(t.get("thingName")) for t in items], self.things)
        for item in items:
            name = str(item.get("thingName"))
            if name in self.things:
                expected = {"attributes": self.things[name]}
                self.expect_fields("ListThings", self.last_reply, item, expected)

    @rule(label=_LABELS, page=_PAGES)
    def list_members(self, label: str, page: int) -> None:
        name = self._name(f"g{label}")
        if name not in self.groups:
            reply = self.call("ListThingsInThingGroup", {"thingGroupName": name})
            self.expect_answer("ListThingsInThingGroup", reply, "ResourceNotFoundException")
            return
        params = {"thingGroupName": name}
        items = self.listing("ListThingsInThingGroup", params, page, str)
        self.expect_listed("ListThingsInThingGroup", map(str, items), self.groups[name])

    @rule(page=_PAGES)
    def list_groups(self, page: int) -> None:
        params = {"namePrefixFilter": self.prefix}
        items = self.listing("ListThingGroups", params, page, lambda g: str(g.get("groupName")))
        self.expect_listed("ListThingGroups", [str(g.get("groupName")) for g in items], self.groups)

    @rule()
    def made_up_token(self) -> None:
        self.bad_token("ListThings", {})

    def teardown(self) -> None:
        for name in list(self.things):
            self.quietly("DeleteThing", {"thingName": name})
        for name in list(self.groups):
            self.quietly("DeleteThingGroup", {"thingGroupName": name})


#: (current status, action) -> the status after it; a pair absent here is a ConflictException.
_LIFECYCLE = {
    ("DRAFT", "PUBLISH"): "PUBLISHED",
    ("PUBLISHED", "PUBLISH"): "PUBLISHED",
    ("PUBLISHED", "DEPRECATE"): "DEPRECATED",
    ("DEPRECATED", "DEPRECATE"): "DEPRECATED",
    ("DEPRECATED", "PUBLISH"): "PUBLISHED",
}


class PackagesMachine(ContractMachine):
    """Software packages and their versions against dicts."""

    service = "iot"
    creates = "CreatePackage"

    def __init__(self) -> None:
        super().__init__()
        self.packages: dict[str, str] = {}
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}

    def _package(self, label: str) -> str:
        return f"{self.prefix}p{label}"

    @rule(label=_LABELS, description=st.sampled_from(["one", "two"]))
    def create_package(self, label: str, description: str) -> None:
        name = self._package(label)
        reply = self.call("CreatePackage", {"packageName": name, "description": description})
        exists = name in self.packages
        self.expect_answer("CreatePackage", reply, "ConflictException" if exists else None)
        if not exists:
            self.packages[name] = description
            self.versions[name] = {}
            self.get_package(label)

    @rule(label=_LABELS)
    def get_package(self, label: str) -> None:
        name = self._package(label)
        reply = self.call("GetPackage", {"packageName": name})
        if name not in self.packages:
            self.expect_answer("GetPackage", reply, "ResourceNotFoundException")
            return
        self.expect_answer("GetPackage", reply, None)
        expected = {"packageName": name, "description": self.packages[name]}
        self.expect_fields("GetPackage", reply, reply.output or {}, expected)

    @rule(label=_LABELS)
    def delete_package(self, label: str) -> None:
        name = self._package(label)
        reply = self.call("DeletePackage", {"packageName": name})
        # AWS: "All package versions must be deleted before deleting the software package."
        blocked = bool(self.versions.get(name))
        self.expect_answer("DeletePackage", reply, "ValidationException" if blocked else None)
        if not blocked:
            self.packages.pop(name, None)
            self.versions.pop(name, None)

    @rule(label=_LABELS, version=st.sampled_from(["1.0", "1.1", "2.0"]), attrs=_ATTRS)
    def create_version(self, label: str, version: str, attrs: dict[str, str]) -> None:
        name = self._package(label)
        params = {"packageName": name, "versionName": version, "attributes": attrs}
        reply = self.call("CreatePackageVersion", params)
        if name not in self.packages:
            self.expect(
                not reply.ok, "CreatePackageVersion", "created a version of no package", reply
            )
            return
        exists = version in self.versions[name]
        self.expect_answer("CreatePackageVersion", reply, "ConflictException" if exists else None)
        if not exists:
            self.versions[name][version] = {"status": "DRAFT", "attributes": attrs}
            self.get_version(label, version)

    @rule(label=_LABELS, version=st.sampled_from(["1.0", "1.1", "2.0"]))
    def get_version(self, label: str, version: str) -> None:
        name = self._package(label)
        reply = self.call("GetPackageVersion", {"packageName": name, "versionName": version})
        model = self.versions.get(name, {}).get(version)
        if model is None:
            self.expect_answer("GetPackageVersion", reply, "ResourceNotFoundException")
            return
        self.expect_answer("GetPackageVersion", reply, None)
        expected = {"packageName": name, "versionName": version, **model}
        self.expect_fields("GetPackageVersion", reply, reply.output or {}, expected)

    @rule(
        label=_LABELS,
        version=st.sampled_from(["1.0", "1.1", "2.0"]),
        action=st.sampled_from(["PUBLISH", "DEPRECATE"]),
    )
    def update_version(self, label: str, version: str, action: str) -> None:
        name = self._package(label)
        params = {"packageName": name, "versionName": version, "action": action}
        reply = self.call("UpdatePackageVersion", params)
        model = self.versions.get(name, {}).get(version)
        if model is None:
            self.expect_answer("UpdatePackageVersion", reply, "ResourceNotFoundException")
            return
        after = _LIFECYCLE.get((model["status"], action))
        self.expect_answer("UpdatePackageVersion", reply, None if after else "ConflictException")
        if after:
            model["status"] = after

    @rule(label=_LABELS, version=st.sampled_from(["1.0", "1.1", "2.0"]))
    def delete_version(self, label: str, version: str) -> None:
        name = self._package(label)
        params = {"packageName": name, "versionName": version}
        self.expect_answer("DeletePackageVersion", self.call("DeletePackageVersion", params), None)
        self.versions.get(name, {}).pop(version, None)

    @rule(page=_PAGES)
    def list_packages(self, page: int) -> None:
        items = self.listing("ListPackages", {}, page, lambda p: str(p.get("packageName")))
        self.expect_listed(
            "ListPackages", [str(p.get("packageName")) for p in items], self.packages
        )

    @precondition(lambda self: bool(self.packages))
    @rule(data=st.data(), page=_PAGES)
    def list_versions(self, data: st.DataObject, page: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.packages)))
        params = {"packageName": name}
        items = self.listing(
            "ListPackageVersions", params, page, lambda v: str(v.get("versionName"))
        )
        listed = {str(v.get("versionName")): v.get("status") for v in items}
        expected = {v: m["status"] for v, m in self.versions[name].items()}
        held = listed == expected
        message = f"listed {listed!r} where the model has {expected!r}"
        self.expect(held, "ListPackageVersions", message, self.last_reply)

    @rule()
    def made_up_token(self) -> None:
        self.bad_token("ListPackages", {})

    def teardown(self) -> None:
        for name, versions in self.versions.items():
            for version in versions:
                self.quietly("DeletePackageVersion", {"packageName": name, "versionName": version})
        for name in self.packages:
            self.quietly("DeletePackage", {"packageName": name})


MACHINES: tuple[type[ContractMachine], ...] = (ThingsMachine, PackagesMachine)
