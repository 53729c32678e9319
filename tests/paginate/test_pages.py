"""paginate(): the loop over pages, the end of a listing, and the invariant checks."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import InvalidArgument, PaginationError
from harness.model import load_service
from harness.paginate import Page, paginate

LIST_THINGS = load_service("iot").operation("ListThings")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeFetch:
    """Answers page ``i`` with ``pages[i]`` (items under ``key``) and ``tokens[i]``."""

    def __init__(
        self,
        pages: list[list[Any]],
        tokens: list[str | None] | None = None,
        *,
        key: str = "things",
        token_key: str = "nextToken",
    ) -> None:
        self.pages = pages
        self.tokens = (
            tokens
            if tokens is not None
            else [
                *(f"t{i + 1}" for i in range(len(pages) - 1)),
                None,
            ]
        )
        self.key, self.token_key = key, token_key
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        token = request.get(self.token_key)
        index = 0 if not token else int(token[1:])
        output: dict[str, Any] = {self.key: self.pages[index]}
        if self.tokens[index] is not None:
            output[self.token_key] = self.tokens[index]
        return output


def things(*names: str) -> list[dict[str, str]]:
    return [{"thingName": n} for n in names]


async def collect(fetch: FakeFetch, operation: Any = LIST_THINGS, **kwargs: Any) -> list[Page]:
    return [page async for page in paginate(operation, {"thingTypeName": "t"}, fetch, **kwargs)]


@pytest.mark.anyio
async def test_pages_until_the_token_is_missing() -> None:
    fetch = FakeFetch([things("a", "b"), things("c"), things("d")])
    pages = await collect(fetch)
    assert [p.number for p in pages] == [1, 2, 3]
    assert [[i["thingName"] for i in p.items] for p in pages] == [["a", "b"], ["c"], ["d"]]
    assert [(p.token_in, p.token_out) for p in pages] == [(None, "t1"), ("t1", "t2"), ("t2", None)]
    assert fetch.requests == [
        {"thingTypeName": "t"},
        {"thingTypeName": "t", "nextToken": "t1"},
        {"thingTypeName": "t", "nextToken": "t2"},
    ]


@pytest.mark.anyio
async def test_the_caller_params_are_not_changed() -> None:
    params = {"thingTypeName": "t"}
    fetch = FakeFetch([things("a"), things("b")])
    _ = [page async for page in paginate(LIST_THINGS, params, fetch)]
    assert params == {"thingTypeName": "t"}


@pytest.mark.anyio
@pytest.mark.parametrize("last", [{"nextToken": ""}, {"nextToken": None}, {}])
async def test_an_empty_null_or_missing_token_ends_the_listing(last: dict[str, Any]) -> None:
    outputs = iter([{"things": things("a"), "nextToken": "t1"}, {"things": things("b"), **last}])
    requests: list[dict[str, Any]] = []

    async def fetch(request: dict[str, Any]) -> dict[str, Any]:
        requests.append(request)
        return next(outputs)

    pages = [page async for page in paginate(LIST_THINGS, {}, fetch)]
    assert len(pages) == 2
    assert pages[-1].token_out is None
    assert len(requests) == 2


@pytest.mark.anyio
async def test_an_empty_page_with_a_token_goes_on() -> None:
    pages = await collect(FakeFetch([[], things("a"), []]))
    assert [len(p.items) for p in pages] == [0, 1, 0]


@pytest.mark.anyio
async def test_a_starting_token_is_used() -> None:
    fetch = FakeFetch([things("a"), things("b"), things("c")])
    pages = [page async for page in paginate(LIST_THINGS, {"nextToken": "t1"}, fetch)]
    assert [p.items for p in pages] == [things("b"), things("c")]
    assert pages[0].token_in == "t1"


@pytest.mark.anyio
async def test_the_same_token_twice_is_an_error() -> None:
    fetch = FakeFetch([things("a"), things("b"), things("c")], tokens=["t1", "t1", None])
    with pytest.raises(PaginationError, match="the same next token was received twice") as info:
        await collect(fetch)
    assert (info.value.service, info.value.operation) == ("iot", "ListThings")
    assert len(fetch.requests) == 2


@pytest.mark.anyio
async def test_a_token_cycle_is_an_error() -> None:
    fetch = FakeFetch(
        [things("a"), things("b"), things("c"), things("d")], tokens=["t1", "t2", "t3", "t1"]
    )
    with pytest.raises(PaginationError, match="page 4 repeats an earlier token"):
        await collect(fetch)
    assert len(fetch.requests) == 4


@pytest.mark.anyio
async def test_a_duplicate_item_is_an_error() -> None:
    fetch = FakeFetch([things("a", "b"), things("c", "a")])
    with pytest.raises(PaginationError, match=r"page 2 repeats item \{'thingName': 'a'\}"):
        await collect(fetch)


@pytest.mark.anyio
async def test_a_duplicate_within_a_page_is_an_error() -> None:
    with pytest.raises(PaginationError, match="page 1 repeats item"):
        await collect(FakeFetch([things("a", "a")]))


@pytest.mark.anyio
async def test_duplicates_are_recognised_whatever_the_key_order() -> None:
    pages = [[{"thingName": "a", "version": 1}], [{"version": 1, "thingName": "a"}]]
    with pytest.raises(PaginationError):
        await collect(FakeFetch(pages))


@pytest.mark.anyio
async def test_duplicate_checks_can_be_turned_off() -> None:
    pages = await collect(FakeFetch([things("a"), things("a")]), check_duplicates=False)
    assert len(pages) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("max_items", "expected"), [(1, [1]), (2, [2]), (3, [2, 1]), (5, [2, 2, 1])]
)
async def test_max_items(max_items: int, expected: list[int]) -> None:
    fetch = FakeFetch([things("a", "b"), things("c", "d"), things("e", "f")])
    pages = await collect(fetch, max_items=max_items)
    assert [len(p.items) for p in pages] == expected
    assert pages[-1].token_out is None
    assert len(fetch.requests) == len(expected)


@pytest.mark.anyio
async def test_page_size_sets_the_limit_key() -> None:
    fetch = FakeFetch([things("a"), things("b")])
    await collect(fetch, page_size=25)
    assert [r.get("maxResults") for r in fetch.requests] == [25, 25]


@pytest.mark.anyio
async def test_no_page_size_sends_no_limit() -> None:
    fetch = FakeFetch([things("a")])
    await collect(fetch)
    assert "maxResults" not in fetch.requests[0]


@pytest.mark.anyio
async def test_a_derived_paginator() -> None:
    operation = load_service("iotwireless").operation("ListFuotaTasks")
    assert operation.paginator is not None
    assert operation.paginator.derived
    fetch = FakeFetch(
        [[{"Id": "1"}, {"Id": "2"}], [{"Id": "3"}]], key="FuotaTaskList", token_key="NextToken"
    )
    pages = [page async for page in paginate(operation, {}, fetch, page_size=2)]
    assert [i["Id"] for p in pages for i in p.items] == ["1", "2", "3"]
    assert fetch.requests == [{"MaxResults": 2}, {"MaxResults": 2, "NextToken": "t1"}]


@pytest.mark.anyio
async def test_an_operation_without_a_paginator() -> None:
    operation = load_service("iot").operation("CreateThing")
    with pytest.raises(InvalidArgument, match=r"iot\.CreateThing is not paginated"):
        await collect(FakeFetch([[]]), operation)


@pytest.mark.anyio
async def test_a_more_results_flag_ends_the_listing() -> None:
    # A paginator with a more_results member stops when it is false, whatever the token says.
    from dataclasses import replace
    from types import SimpleNamespace

    paginator = replace(LIST_THINGS.paginator, more_results="isTruncated")  # type: ignore[type-var]
    operation = SimpleNamespace(paginator=paginator, service=LIST_THINGS.service, name="ListThings")
    outputs = iter(
        [
            {"things": things("a"), "nextToken": "t1", "isTruncated": True},
            {"things": things("b"), "nextToken": "t2", "isTruncated": False},
        ]
    )

    async def fetch(request: dict[str, Any]) -> dict[str, Any]:
        return next(outputs)

    pages = [page async for page in paginate(operation, {}, fetch)]  # type: ignore[arg-type]
    assert [p.token_out for p in pages] == ["t1", None]
