"""Page through any list operation with the model's paginator, checking the invariants.

The paginator comes from the model (botocore's, or derived where botocore has none, such as
iotwireless ListFuotaTasks). Fetching a page is the caller's business (the engine adds throttling
and retries); this module owns the loop and its invariants:

* the listing ends when the output token is missing, null or empty;
* a token that comes back equal to the one sent, or that was seen before, is a broken listing
  (botocore raises "The same next token was received twice"; we also catch longer cycles);
* an item that appears twice across pages is a broken listing (duplicates or an unstable order).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from harness.errors import InvalidArgument, PaginationError

if TYPE_CHECKING:
    from harness.model import Operation

__all__ = ["Fetch", "Page", "paginate"]

#: Fetches one page: the request parameters in, the response output out.
Fetch = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing."""

    number: int
    items: list[Any]
    token_in: str | None
    token_out: str | None


def _lookup(output: dict[str, Any], path: str) -> Any:
    value: Any = output
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _identity(item: Any) -> bytes:
    blob = orjson.dumps(item, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(blob, digest_size=16).digest()


async def paginate(
    operation: Operation,
    params: dict[str, Any],
    fetch: Fetch,
    *,
    page_size: int | None = None,
    max_items: int | None = None,
    check_duplicates: bool = True,
) -> AsyncIterator[Page]:
    """Yield every page of ``operation`` for ``params``.

    :param page_size: sets the paginator's limit member (``maxResults``) when given
    :param max_items: stop after this many items
    :param check_duplicates: remember an identity digest per item (16 bytes) to catch duplicates
    :raises InvalidArgument: when the operation has no paginator
    :raises PaginationError: when the listing breaks an invariant
    """
    paginator = operation.paginator
    if paginator is None:
        raise InvalidArgument(f"{operation.service.name}.{operation.name} is not paginated")
    token_in_key = paginator.input_token[0]
    token_out_key = paginator.output_token[0]
    request = dict(params)
    if page_size is not None and paginator.limit_key:
        request[paginator.limit_key] = page_size
    seen_tokens: set[str] = set()
    seen_items: set[bytes] = set()
    token: str | None = request.get(token_in_key) or None
    count = 0
    number = 0
    service, name = operation.service.name, operation.name
    while True:
        if token is not None:
            request[token_in_key] = token
        output = await fetch(dict(request))
        number += 1
        items: list[Any] = []
        for key in paginator.result_key:
            found = _lookup(output, key)
            if isinstance(found, list):
                items.extend(found)
        if check_duplicates:
            for item in items:
                digest = _identity(item)
                if digest in seen_items:
                    raise PaginationError(
                        service, name, f"page {number} repeats item {item!r:.200}"
                    )
                seen_items.add(digest)
        next_token = _lookup(output, token_out_key) or None
        if paginator.more_results and not _lookup(output, paginator.more_results):
            next_token = None
        if max_items is not None and count + len(items) >= max_items:
            items = items[: max_items - count]
            next_token = None
        count += len(items)
        yield Page(number, items, token, next_token)
        if next_token is None:
            return
        if next_token == token:
            raise PaginationError(service, name, "the same next token was received twice")
        if next_token in seen_tokens:
            raise PaginationError(service, name, f"page {number} repeats an earlier token")
        seen_tokens.add(next_token)
        token = next_token
