"""IoT in the emulator through boto3: things, thing groups, membership and the package catalog.

Every modeled error the handlers answer is checked by exception class and HTTP status, and the
listings are paged to the end with boto3's own paginators.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from harness.emulator._server import EmulatorThread

ACCOUNT = "123456789012"
REGION = "us-east-1"


def arn(resource: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:{resource}"


# One client per emulator endpoint for the whole module: building a boto3 client reads IoT's
# large model again (~0.2 s a test), and a client holds no state the emulator's reset would miss.
_CLIENTS: dict[str, Any] = {}


@pytest.fixture
def iot(aws_client: Callable[..., Any], harness_endpoint: str) -> Any:
    client = _CLIENTS.get(harness_endpoint)
    if client is None:
        client = _CLIENTS[harness_endpoint] = aws_client("iot", max_pool_connections=16)
    return client


def status_of(exc: pytest.ExceptionInfo[Any]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def in_parallel(fn: Callable[[int], Any], count: int) -> None:
    """Call ``fn(i)`` for every i < count from a few threads (boto3 clients are thread-safe)."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fn, range(count)))


def paged(iot: Any, operation: str, key: str, **params: Any) -> list[Any]:
    pages = iot.get_paginator(operation).paginate(**params)
    return [item for page in pages for item in page[key]]


def names(items: Iterable[dict[str, Any]], key: str = "thingName") -> list[str]:
    return [item[key] for item in items]


# ------------------------------------------------------------------------------ things
def test_create_thing_is_idempotent_on_the_same_config(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="bulb")
    config = {"thingTypeName": "bulb", "attributePayload": {"attributes": {"watts": "60"}}}
    first = iot.create_thing(thingName="lamp", **config)
    again = iot.create_thing(thingName="lamp", **config)
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (again["thingId"], again["thingArn"]) == (first["thingId"], first["thingArn"])
    assert first["thingArn"] == arn("thing/lamp")
    assert str(uuid.UUID(first["thingId"])) == first["thingId"]


@pytest.mark.parametrize(
    "change",
    [
        {"attributePayload": {"attributes": {"watts": "75"}}},
        {"attributePayload": {"attributes": {}}},
        {"attributePayload": {"attributes": {"watts": "60"}}, "thingTypeName": "bulb"},
    ],
)
def test_create_thing_with_another_config_already_exists(iot: Any, change: dict[str, Any]) -> None:
    iot.create_thing_type(thingTypeName="bulb")
    created = iot.create_thing(thingName="lamp", attributePayload={"attributes": {"watts": "60"}})
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as exc:
        iot.create_thing(thingName="lamp", **change)
    assert status_of(exc) == 409
    assert exc.value.response["resourceId"] == created["thingId"]
    assert exc.value.response["resourceArn"] == created["thingArn"]


def test_create_thing_needs_its_type_and_billing_group(iot: Any) -> None:
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.create_thing(thingName="t", thingTypeName="nope")
    assert status_of(exc) == 404
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.create_thing(thingName="t", billingGroupName="nope")
    iot.create_thing_type(thingTypeName="bulb")
    iot.create_billing_group(billingGroupName="lab")
    iot.create_thing(thingName="t", thingTypeName="bulb", billingGroupName="lab")
    described = iot.describe_thing(thingName="t")
    assert (described["thingTypeName"], described["billingGroupName"]) == ("bulb", "lab")


def test_attribute_limits_depend_on_the_thing_type(iot: Any) -> None:
    four = {f"a{i}": "v" for i in range(4)}
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.create_thing(thingName="t", attributePayload={"attributes": four})
    assert status_of(exc) == 400
    iot.create_thing_type(thingTypeName="typed")
    iot.create_thing(thingName="t", thingTypeName="typed", attributePayload={"attributes": four})
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.update_thing(thingName="t", removeThingType=True)


def test_describe_thing(iot: Any) -> None:
    created = iot.create_thing(thingName="t1", attributePayload={"attributes": {"k": "v"}})
    got = iot.describe_thing(thingName="t1")
    assert got["thingId"] == created["thingId"]
    assert got["thingArn"] == arn("thing/t1")
    assert got["defaultClientId"] == "t1"
    assert got["attributes"] == {"k": "v"}
    assert got["version"] == 1
    assert "thingTypeName" not in got
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.describe_thing(thingName="ghost")
    assert status_of(exc) == 404


def test_update_thing_merges_replaces_and_removes_attributes(iot: Any) -> None:
    iot.create_thing(thingName="t", attributePayload={"attributes": {"a": "1", "b": "2"}})
    iot.update_thing(
        thingName="t", attributePayload={"attributes": {"b": "3", "c": "4"}, "merge": True}
    )
    assert iot.describe_thing(thingName="t")["attributes"] == {"a": "1", "b": "3", "c": "4"}
    iot.update_thing(thingName="t", attributePayload={"attributes": {"a": ""}, "merge": True})
    assert iot.describe_thing(thingName="t")["attributes"] == {"b": "3", "c": "4"}
    iot.update_thing(thingName="t", attributePayload={"attributes": {"z": "9"}})
    got = iot.describe_thing(thingName="t")
    assert got["attributes"] == {"z": "9"}
    assert got["version"] == 4


def test_update_thing_type_and_errors(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="bulb")
    iot.create_thing(thingName="t")
    iot.update_thing(thingName="t", thingTypeName="bulb", expectedVersion=1)
    assert iot.describe_thing(thingName="t")["thingTypeName"] == "bulb"
    with pytest.raises(iot.exceptions.VersionConflictException) as exc:
        iot.update_thing(thingName="t", expectedVersion=1)
    assert status_of(exc) == 409
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.update_thing(thingName="t", thingTypeName="bulb", removeThingType=True)
    assert status_of(exc) == 400
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.update_thing(thingName="t", thingTypeName="missing")
    assert status_of(exc) == 404
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.update_thing(thingName="ghost", attributePayload={"attributes": {}})
    assert names(iot.list_things(thingTypeName="bulb")["things"]) == ["t"]
    iot.update_thing(thingName="t", removeThingType=True)
    assert "thingTypeName" not in iot.describe_thing(thingName="t")
    assert iot.list_things(thingTypeName="bulb")["things"] == []


def test_delete_thing(iot: Any) -> None:
    iot.create_thing(thingName="t")
    iot.create_thing_group(thingGroupName="g")
    iot.add_thing_to_thing_group(thingGroupName="g", thingName="t")
    with pytest.raises(iot.exceptions.VersionConflictException) as exc:
        iot.delete_thing(thingName="t", expectedVersion=7)
    assert status_of(exc) == 409
    iot.delete_thing(thingName="t")
    iot.delete_thing(thingName="t")  # already gone: AWS answers success
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="t")
    assert iot.list_things_in_thing_group(thingGroupName="g")["things"] == []
    # The name is free again, with a new id and no memberships.
    iot.create_thing(thingName="t")
    assert iot.list_thing_groups_for_thing(thingName="t")["thingGroups"] == []


# ------------------------------------------------------------------------------ ListThings
def test_list_things_filters(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="bulb")
    iot.create_thing(thingName="r1", attributePayload={"attributes": {"color": "red"}})
    iot.create_thing(
        thingName="r2", thingTypeName="bulb", attributePayload={"attributes": {"color": "red"}}
    )
    iot.create_thing(thingName="rb", attributePayload={"attributes": {"color": "redish"}})
    iot.create_thing(thingName="b1", thingTypeName="bulb", attributePayload={"attributes": {}})

    def listed(**params: Any) -> list[str]:
        return names(iot.list_things(**params)["things"])

    assert listed() == ["r1", "r2", "rb", "b1"]
    assert listed(attributeName="color", attributeValue="red") == ["r1", "r2"]
    prefix = {"attributeName": "color", "attributeValue": "red", "usePrefixAttributeValue": True}
    assert listed(**prefix) == ["r1", "r2", "rb"]
    assert listed(attributeName="color") == ["r1", "r2", "rb"]
    assert listed(thingTypeName="bulb") == ["r2", "b1"]
    assert listed(thingTypeName="bulb", attributeName="color", attributeValue="red") == ["r2"]
    assert listed(attributeName="color", attributeValue="blue") == []
    assert listed(thingTypeName="other") == []
    items = iot.list_things(thingTypeName="bulb")["things"]
    assert items[0] == {
        "thingName": "r2",
        "thingTypeName": "bulb",
        "thingArn": arn("thing/r2"),
        "attributes": {"color": "red"},
        "version": 1,
    }
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.list_things(attributeValue="red")
    assert status_of(exc) == 400


def test_list_things_follows_updates_and_deletes(iot: Any) -> None:
    iot.create_thing(thingName="a", attributePayload={"attributes": {"color": "red"}})
    iot.create_thing(thingName="b", attributePayload={"attributes": {"color": "red"}})
    iot.update_thing(thingName="a", attributePayload={"attributes": {"color": "blue"}})
    iot.delete_thing(thingName="b")
    red = iot.list_things(attributeName="color", attributeValue="red")["things"]
    blue = iot.list_things(attributeName="color", attributeValue="blue")["things"]
    assert (names(red), names(blue)) == ([], ["a"])
    assert blue[0]["version"] == 2


def test_index_buckets_grow_shrink_and_go(harness_emulator: EmulatorThread, iot: Any) -> None:
    def red() -> list[str]:
        return names(iot.list_things(attributeName="color", attributeValue="red")["things"])

    def buckets() -> int:
        state = harness_emulator.core.state(ACCOUNT, REGION, "iot")
        return len(state.by_attr) + len(state.by_attr_name)

    iot.create_thing(thingName="a", attributePayload={"attributes": {"color": "red"}})
    assert red() == ["a"]
    iot.create_thing(thingName="b", attributePayload={"attributes": {"color": "red"}})
    iot.create_thing(thingName="c", attributePayload={"attributes": {"color": "red"}})
    assert red() == ["a", "b", "c"]
    iot.delete_thing(thingName="a")
    iot.update_thing(thingName="c", attributePayload={"attributes": {}})
    assert red() == ["b"]
    iot.delete_thing(thingName="b")
    assert red() == []
    assert harness_emulator.call(buckets) == 0


def test_list_things_pages_through_1100_things(iot: Any) -> None:
    def create(i: int) -> None:
        color = "red" if i % 2 else "blue"
        iot.create_thing(thingName=f"t{i:04d}", attributePayload={"attributes": {"color": color}})

    in_parallel(create, 1100)
    config = {"PageSize": 250}
    listed = names(paged(iot, "list_things", "things", PaginationConfig=config))
    assert len(listed) == len(set(listed)) == 1100
    assert set(listed) == {f"t{i:04d}" for i in range(1100)}
    red = names(
        paged(
            iot,
            "list_things",
            "things",
            attributeName="color",
            attributeValue="red",
            PaginationConfig=config,
        )
    )
    assert len(red) == len(set(red)) == 550
    assert set(red) == {f"t{i:04d}" for i in range(1, 1100, 2)}
    # Full pages up to the last one, which alone carries no token.
    pages = list(iot.get_paginator("list_things").paginate(PaginationConfig=config))
    assert [len(p["things"]) for p in pages] == [250, 250, 250, 250, 100]
    assert "nextToken" not in pages[-1]


def test_list_things_rejects_bad_page_sizes_and_tokens(iot: Any) -> None:
    for i in range(3):
        iot.create_thing(thingName=f"t{i}", attributePayload={"attributes": {"k": "v"}})
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.list_things(maxResults=251)
    assert status_of(exc) == 400
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.list_things(nextToken="not-a-token")
    assert status_of(exc) == 400
    token = iot.list_things(maxResults=1)["nextToken"]
    # A token belongs to the listing it came from: another filter cannot use it.
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.list_things(nextToken=token, attributeName="k", attributeValue="v")
    assert status_of(exc) == 400
    assert names(iot.list_things(nextToken=token, maxResults=5)["things"]) == ["t1", "t2"]


# ------------------------------------------------------------------------------ thing groups
def test_create_thing_group_is_idempotent_on_the_same_properties(iot: Any) -> None:
    props = {"thingGroupDescription": "lab", "attributePayload": {"attributes": {"floor": "2"}}}
    first = iot.create_thing_group(thingGroupName="g", thingGroupProperties=props)
    again = iot.create_thing_group(thingGroupName="g", thingGroupProperties=props)
    assert (again["thingGroupId"], again["thingGroupArn"]) == (
        first["thingGroupId"],
        first["thingGroupArn"],
    )
    assert first["thingGroupArn"] == arn("thinggroup/g")
    assert str(uuid.UUID(first["thingGroupId"])) == first["thingGroupId"]
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as exc:
        iot.create_thing_group(
            thingGroupName="g", thingGroupProperties={"thingGroupDescription": "x"}
        )
    assert status_of(exc) == 409
    assert exc.value.response["resourceId"] == first["thingGroupId"]
    assert exc.value.response["resourceArn"] == first["thingGroupArn"]


def test_thing_group_hierarchy(iot: Any) -> None:
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.create_thing_group(thingGroupName="child", parentGroupName="missing")
    assert status_of(exc) == 400
    iot.create_thing_group(thingGroupName="root")
    iot.create_thing_group(thingGroupName="mid", parentGroupName="root")
    iot.create_thing_group(thingGroupName="leaf", parentGroupName="mid")
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing_group(thingGroupName="leaf", parentGroupName="root")
    got = iot.describe_thing_group(thingGroupName="leaf")
    assert got["version"] == 1
    assert got["thingGroupMetadata"]["parentGroupName"] == "mid"
    assert got["thingGroupMetadata"]["rootToParentThingGroups"] == [
        {"groupName": "root", "groupArn": arn("thinggroup/root")},
        {"groupName": "mid", "groupArn": arn("thinggroup/mid")},
    ]
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.describe_thing_group(thingGroupName="ghost")
    assert status_of(exc) == 404
    for depth in range(4):  # root, mid, leaf and four more: seven levels
        iot.create_thing_group(
            thingGroupName=f"d{depth}", parentGroupName=f"d{depth - 1}" if depth else "leaf"
        )
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_thing_group(thingGroupName="too-deep", parentGroupName="d3")


def test_update_and_delete_thing_group(iot: Any) -> None:
    iot.create_thing_group(
        thingGroupName="g", thingGroupProperties={"attributePayload": {"attributes": {"a": "1"}}}
    )
    iot.create_thing_group(thingGroupName="kid", parentGroupName="g")
    updated = iot.update_thing_group(
        thingGroupName="g",
        thingGroupProperties={
            "thingGroupDescription": "new",
            "attributePayload": {"attributes": {"b": "2"}, "merge": True},
        },
        expectedVersion=1,
    )
    assert updated["version"] == 2
    props = iot.describe_thing_group(thingGroupName="g")["thingGroupProperties"]
    assert props == {
        "thingGroupDescription": "new",
        "attributePayload": {"attributes": {"a": "1", "b": "2"}},
    }
    with pytest.raises(iot.exceptions.VersionConflictException) as exc:
        iot.update_thing_group(thingGroupName="g", thingGroupProperties={}, expectedVersion=1)
    assert status_of(exc) == 409
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.update_thing_group(thingGroupName="ghost", thingGroupProperties={})
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.delete_thing_group(thingGroupName="g")  # it still has a child
    assert status_of(exc) == 400
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.delete_thing_group(thingGroupName="kid", expectedVersion=5)
    iot.delete_thing_group(thingGroupName="kid")
    iot.delete_thing_group(thingGroupName="g")
    iot.delete_thing_group(thingGroupName="g")  # already gone: success
    assert iot.list_thing_groups()["thingGroups"] == []


def test_list_thing_groups(iot: Any) -> None:
    for name, parent in [("a", None), ("a1", "a"), ("a11", "a1"), ("a2", "a"), ("b", None)]:
        iot.create_thing_group(
            thingGroupName=name, **({"parentGroupName": parent} if parent else {})
        )

    def listed(**params: Any) -> list[str]:
        return names(iot.list_thing_groups(**params)["thingGroups"], "groupName")

    assert listed() == ["a", "a1", "a11", "a2", "b"]
    assert listed(recursive=False) == ["a", "b"]
    assert listed(parentGroup="a") == ["a1", "a11", "a2"]
    assert listed(parentGroup="a", recursive=False) == ["a1", "a2"]
    assert listed(namePrefixFilter="a1") == ["a1", "a11"]
    assert listed(parentGroup="a", namePrefixFilter="a1", recursive=False) == ["a1"]
    assert iot.list_thing_groups(namePrefixFilter="b")["thingGroups"] == [
        {"groupName": "b", "groupArn": arn("thinggroup/b")}
    ]
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.list_thing_groups(parentGroup="ghost")
    assert status_of(exc) == 404
    pages = list(iot.get_paginator("list_thing_groups").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["thingGroups"]) for p in pages] == [2, 2, 1]


# ------------------------------------------------------------------------------ membership
def test_add_and_remove_things_by_name_or_arn(iot: Any) -> None:
    iot.create_thing(thingName="t")
    iot.create_thing_group(thingGroupName="g")
    iot.create_thing_group(thingGroupName="h")
    iot.add_thing_to_thing_group(thingGroupName="g", thingName="t")
    iot.add_thing_to_thing_group(thingGroupArn=arn("thinggroup/g"), thingArn=arn("thing/t"))
    iot.add_thing_to_thing_group(thingGroupArn=arn("thinggroup/h"), thingName="t")
    assert iot.list_things_in_thing_group(thingGroupName="g")["things"] == ["t"]
    assert iot.list_thing_groups_for_thing(thingName="t")["thingGroups"] == [
        {"groupName": "g", "groupArn": arn("thinggroup/g")},
        {"groupName": "h", "groupArn": arn("thinggroup/h")},
    ]
    iot.remove_thing_from_thing_group(thingGroupName="g", thingArn=arn("thing/t"))
    iot.remove_thing_from_thing_group(thingGroupName="g", thingName="t")  # not a member: fine
    assert iot.list_things_in_thing_group(thingGroupName="g")["things"] == []
    assert names(iot.list_thing_groups_for_thing(thingName="t")["thingGroups"], "groupName") == [
        "h"
    ]


@pytest.mark.parametrize("operation", ["add_thing_to_thing_group", "remove_thing_from_thing_group"])
def test_membership_errors(iot: Any, operation: str) -> None:
    iot.create_thing(thingName="t")
    iot.create_thing_group(thingGroupName="g")
    call = getattr(iot, operation)
    for params in [
        {"thingGroupName": "ghost", "thingName": "t"},
        {"thingGroupName": "g", "thingName": "ghost"},
        {"thingGroupName": "g", "thingArn": arn("thing/ghost")},
        {"thingGroupArn": arn("thinggroup/ghost"), "thingName": "t"},
        {"thingGroupName": "g", "thingArn": "arn:aws:iot:eu-west-1:999999999999:thing/t"},
    ]:
        with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
            call(**params)
        assert status_of(exc) == 404, params
    for params in [
        {"thingGroupName": "g"},
        {"thingName": "t"},
        {"thingGroupName": "g", "thingName": "t", "thingArn": arn("thing/other")},
    ]:
        with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
            call(**params)
        assert status_of(exc) == 400, params


def test_a_thing_is_in_at_most_ten_groups(iot: Any) -> None:
    iot.create_thing(thingName="t")
    for i in range(11):
        iot.create_thing_group(thingGroupName=f"g{i}")
    for i in range(10):
        iot.add_thing_to_thing_group(thingGroupName=f"g{i}", thingName="t")
    iot.add_thing_to_thing_group(thingGroupName="g0", thingName="t")  # already a member
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.add_thing_to_thing_group(thingGroupName="g10", thingName="t")
    assert status_of(exc) == 400
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.update_thing_groups_for_thing(thingName="t", thingGroupsToAdd=["g10"])
    iot.update_thing_groups_for_thing(
        thingName="t", thingGroupsToAdd=["g10"], thingGroupsToRemove=["g0", "g1"]
    )
    groups = names(
        paged(iot, "list_thing_groups_for_thing", "thingGroups", thingName="t"), "groupName"
    )
    assert sorted(groups) == sorted(f"g{i}" for i in range(2, 11))
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.update_thing_groups_for_thing(thingName="t", thingGroupsToAdd=["ghost"])
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.update_thing_groups_for_thing(thingGroupsToAdd=["g0"])  # which thing?
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.list_thing_groups_for_thing(thingName="ghost")
    assert status_of(exc) == 404


def test_list_things_in_thing_group_pages_through_1050_members(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="fleet")

    def enrol(i: int) -> None:
        iot.create_thing(thingName=f"m{i:04d}")
        iot.add_thing_to_thing_group(thingGroupName="fleet", thingName=f"m{i:04d}")

    in_parallel(enrol, 1050)
    iot.create_thing(thingName="outsider")
    listed = paged(
        iot,
        "list_things_in_thing_group",
        "things",
        thingGroupName="fleet",
        PaginationConfig={"PageSize": 250},
    )
    assert len(listed) == len(set(listed)) == 1050
    assert set(listed) == {f"m{i:04d}" for i in range(1050)}
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.list_things_in_thing_group(thingGroupName="fleet", maxResults=251)
    assert status_of(exc) == 400
    token = iot.list_things_in_thing_group(thingGroupName="fleet", maxResults=10)["nextToken"]
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.list_things_in_thing_group(thingGroupName="fleet", recursive=True, nextToken=token)
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.list_things_in_thing_group(thingGroupName="ghost")
    assert status_of(exc) == 404


def test_recursive_listing_covers_the_subtree_once(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="root")
    iot.create_thing_group(thingGroupName="left", parentGroupName="root")
    iot.create_thing_group(thingGroupName="deep", parentGroupName="left")
    iot.create_thing_group(thingGroupName="right", parentGroupName="root")
    iot.create_thing_group(thingGroupName="elsewhere")
    members = {
        "root": ["r0", "shared"],
        "left": ["l0", "shared", "l1"],
        "deep": ["d0", "l1"],
        "right": ["x0", "shared", "d0"],
        "elsewhere": ["e0", "shared"],
    }
    for group, things in members.items():
        for thing in things:
            iot.create_thing(thingName=thing)
            iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
    expected = {"r0", "shared", "l0", "l1", "d0", "x0"}
    for size in (1, 2, 3, 250):
        listed = paged(
            iot,
            "list_things_in_thing_group",
            "things",
            thingGroupName="root",
            recursive=True,
            PaginationConfig={"PageSize": size},
        )
        assert len(listed) == len(set(listed)) == len(expected), size
        assert set(listed) == expected
    direct = iot.list_things_in_thing_group(thingGroupName="root")["things"]
    assert direct == ["r0", "shared"]
    left = iot.list_things_in_thing_group(thingGroupName="left", recursive=True)["things"]
    assert sorted(left) == ["d0", "l0", "l1", "shared"]


# ------------------------------------------------------------------------------ packages
def test_packages(iot: Any) -> None:
    created = iot.create_package(packageName="fw", description="firmware")
    assert created["packageArn"] == arn("package/fw")
    assert created["description"] == "firmware"
    with pytest.raises(iot.exceptions.ConflictException) as exc:
        iot.create_package(packageName="fw")
    assert status_of(exc) == 409
    got = iot.get_package(packageName="fw")
    assert (got["packageName"], got["description"]) == ("fw", "firmware")
    assert "defaultVersionName" not in got
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.get_package(packageName="ghost")
    assert status_of(exc) == 404
    for i in range(5):
        iot.create_package(packageName=f"p{i}")
    listed = paged(iot, "list_packages", "packageSummaries", PaginationConfig={"PageSize": 2})
    assert names(listed, "packageName") == ["fw", "p0", "p1", "p2", "p3", "p4"]
    with pytest.raises(iot.exceptions.ValidationException) as exc:
        iot.list_packages(maxResults=101)
    assert status_of(exc) == 400
    with pytest.raises(iot.exceptions.ValidationException):
        iot.list_packages(nextToken="bogus")


def test_create_package_version(iot: Any) -> None:
    with pytest.raises(iot.exceptions.ValidationException) as exc:
        iot.create_package_version(packageName="ghost", versionName="1.0")
    assert status_of(exc) == 400
    assert "ghost" in str(exc.value)
    iot.create_package(packageName="fw")
    created = iot.create_package_version(
        packageName="fw", versionName="1.0", description="first", attributes={"k": "v"}
    )
    assert created["packageVersionArn"] == arn("package/fw/version/1.0")
    assert (created["status"], created["attributes"]) == ("DRAFT", {"k": "v"})
    with pytest.raises(iot.exceptions.ConflictException) as exc:
        iot.create_package_version(packageName="fw", versionName="1.0")
    assert status_of(exc) == 409
    got = iot.get_package_version(packageName="fw", versionName="1.0")
    assert (got["status"], got["description"], got["attributes"]) == ("DRAFT", "first", {"k": "v"})
    for missing in (
        {"packageName": "fw", "versionName": "9"},
        {"packageName": "x", "versionName": "1"},
    ):
        with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
            iot.get_package_version(**missing)
        assert status_of(exc) == 404


def test_package_version_attributes_are_at_most_3kb(iot: Any) -> None:
    iot.create_package(packageName="fw")
    # Three attributes of 1 + 1023 bytes: exactly 3072 bytes is allowed, one more is not.
    fits = dict.fromkeys("abc", "v" * 1023)
    iot.create_package_version(packageName="fw", versionName="ok", attributes=fits)
    over = {**fits, "c": "v" * 1024}
    with pytest.raises(iot.exceptions.ValidationException) as exc:
        iot.create_package_version(packageName="fw", versionName="big", attributes=over)
    assert status_of(exc) == 400
    with pytest.raises(iot.exceptions.ValidationException):
        iot.update_package_version(packageName="fw", versionName="ok", attributes=over)
    # Multi-byte characters count by their UTF-8 size.
    wide = {"a": "é" * 1536}
    with pytest.raises(iot.exceptions.ValidationException):
        iot.create_package_version(packageName="fw", versionName="wide", attributes=wide)


def test_create_package_version_client_token_replay(iot: Any) -> None:
    iot.create_package(packageName="fw")
    token = str(uuid.uuid4())
    first = iot.create_package_version(packageName="fw", versionName="1.0", clientToken=token)
    again = iot.create_package_version(packageName="fw", versionName="1.0", clientToken=token)
    assert again["packageVersionArn"] == first["packageVersionArn"]
    with pytest.raises(iot.exceptions.ConflictException) as exc:
        iot.create_package_version(packageName="fw", versionName="2.0", clientToken=token)
    assert status_of(exc) == 409
    versions = iot.list_package_versions(packageName="fw")["packageVersionSummaries"]
    assert names(versions, "versionName") == ["1.0"]


def test_package_version_lifecycle(iot: Any) -> None:
    iot.create_package(packageName="fw")
    iot.create_package_version(packageName="fw", versionName="1.0")

    def status() -> str:
        return str(iot.get_package_version(packageName="fw", versionName="1.0")["status"])

    with pytest.raises(iot.exceptions.ConflictException) as exc:
        iot.update_package_version(packageName="fw", versionName="1.0", action="DEPRECATE")
    assert status_of(exc) == 409
    iot.update_package_version(
        packageName="fw", versionName="1.0", action="PUBLISH", attributes={"k": "v"}
    )
    assert status() == "PUBLISHED"
    iot.update_package_version(packageName="fw", versionName="1.0", action="PUBLISH")  # no-op
    with pytest.raises(iot.exceptions.ConflictException) as exc:
        iot.update_package_version(packageName="fw", versionName="1.0", attributes={"k": "w"})
    assert status_of(exc) == 409
    iot.update_package_version(packageName="fw", versionName="1.0", description="still editable")
    iot.update_package_version(packageName="fw", versionName="1.0", action="DEPRECATE")
    assert status() == "DEPRECATED"
    iot.update_package_version(packageName="fw", versionName="1.0", action="PUBLISH")
    got = iot.get_package_version(packageName="fw", versionName="1.0")
    assert (got["status"], got["description"], got["attributes"]) == (
        "PUBLISHED",
        "still editable",
        {"k": "v"},
    )
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.update_package_version(packageName="fw", versionName="9", action="PUBLISH")
    assert status_of(exc) == 404


def test_list_package_versions_by_status(iot: Any) -> None:
    iot.create_package(packageName="fw")
    for i in range(7):
        iot.create_package_version(packageName="fw", versionName=f"v{i}")
    for i in (1, 3, 5):
        iot.update_package_version(packageName="fw", versionName=f"v{i}", action="PUBLISH")
    iot.update_package_version(packageName="fw", versionName="v5", action="DEPRECATE")

    def listed(**params: Any) -> list[str]:
        items = paged(
            iot,
            "list_package_versions",
            "packageVersionSummaries",
            packageName="fw",
            PaginationConfig={"PageSize": 2},
            **params,
        )
        return names(items, "versionName")

    assert listed() == [f"v{i}" for i in range(7)]
    assert listed(status="DRAFT") == ["v0", "v2", "v4", "v6"]
    assert listed(status="PUBLISHED") == ["v1", "v3"]
    assert listed(status="DEPRECATED") == ["v5"]
    with pytest.raises(iot.exceptions.ValidationException) as exc:
        iot.list_package_versions(packageName="ghost")
    assert status_of(exc) == 400


def test_default_version_and_deletes(iot: Any) -> None:
    iot.create_package(packageName="fw")
    iot.create_package_version(packageName="fw", versionName="1.0")
    with pytest.raises(iot.exceptions.ConflictException) as exc:
        iot.update_package(packageName="fw", defaultVersionName="1.0")  # still a DRAFT
    assert status_of(exc) == 409
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.update_package(packageName="fw", defaultVersionName="9.9")
    assert status_of(exc) == 404
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.update_package(packageName="ghost", description="x")
    with pytest.raises(iot.exceptions.ValidationException) as exc:
        iot.update_package(packageName="fw", defaultVersionName="1.0", unsetDefaultVersion=True)
    assert status_of(exc) == 400
    iot.update_package_version(packageName="fw", versionName="1.0", action="PUBLISH")
    iot.update_package(packageName="fw", defaultVersionName="1.0", description="new")
    got = iot.get_package(packageName="fw")
    assert (got["defaultVersionName"], got["description"]) == ("1.0", "new")
    assert iot.list_packages()["packageSummaries"][0]["defaultVersionName"] == "1.0"
    with pytest.raises(iot.exceptions.ValidationException):
        iot.delete_package_version(packageName="fw", versionName="1.0")  # the default
    with pytest.raises(iot.exceptions.ValidationException):
        iot.delete_package(packageName="fw")  # still has a version
    iot.update_package(packageName="fw", unsetDefaultVersion=True)
    assert "defaultVersionName" not in iot.get_package(packageName="fw")
    iot.delete_package_version(packageName="fw", versionName="1.0")
    iot.delete_package_version(packageName="fw", versionName="1.0")  # already gone
    iot.delete_package_version(packageName="ghost", versionName="1.0")
    iot.delete_package(packageName="fw")
    iot.delete_package(packageName="fw")  # already gone
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_package(packageName="fw")


# ------------------------------------------------------------------------------ state
def test_resource_counts_in_the_admin_stats(iot: Any, harness_emulator: EmulatorThread) -> None:
    iot.create_thing_type(thingTypeName="bulb")
    iot.create_thing(thingName="t", thingTypeName="bulb")
    iot.create_thing_group(thingGroupName="g")
    iot.create_package(packageName="fw")
    iot.create_package_version(packageName="fw", versionName="1")
    iot.create_package_version(packageName="fw", versionName="2")
    iot.delete_package_version(packageName="fw", versionName="2")
    stats = harness_emulator.call(harness_emulator.core.stats)
    assert stats["resources"]["iot"] == {
        "ThingType": 1,
        "Thing": 1,
        "ThingGroup": 1,
        "Package": 1,
        "PackageVersion": 1,
    }


def test_exact_filters_page_an_index(harness_emulator: EmulatorThread, iot: Any) -> None:
    """With 20,000 things only the 3 matching rows are visited, not the registry."""
    iot.create_thing(thingName="seed")

    def populate() -> None:
        from harness.emulator.services.iot import Thing

        state = harness_emulator.core.state(ACCOUNT, REGION, "iot")
        for i in range(20_000):
            color = "rare" if i % 7_000 == 0 else f"c{i}"
            thing = Thing(
                f"bulk{i}", str(uuid.uuid4()), arn(f"thing/bulk{i}"), None, {"color": color}, None
            )
            state.things.put(thing.name, thing)
            state.reindex(thing, (None, {}), (None, thing.attributes))

    harness_emulator.call(populate)
    state = harness_emulator.call(lambda: harness_emulator.core.state(ACCOUNT, REGION, "iot"))
    assert harness_emulator.call(lambda: len(state.by_attr[("color", "rare")])) == 3
    listed = iot.list_things(attributeName="color", attributeValue="rare", maxResults=2)
    assert names(listed["things"]) == ["bulk0", "bulk7000"]
    rest = iot.list_things(
        attributeName="color", attributeValue="rare", maxResults=2, nextToken=listed["nextToken"]
    )
    assert names(rest["things"]) == ["bulk14000"]
    assert "nextToken" not in rest
