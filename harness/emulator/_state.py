"""Storage primitives of the emulator: indexed tables, pagination tokens, the idempotency cache.

Everything here is O(1) per lookup and O(page) per list page, whatever the table size, so the
emulator behaves the same at ten resources and at a million.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import operator
import struct
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

__all__ = [
    "IdempotencyCache",
    "IdempotencyEntry",
    "Page",
    "Table",
    "TokenCodec",
    "params_digest",
    "record_of",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Page(Generic[V]):
    """One page of a listing: the items and the position to resume from (``None``: last page)."""

    items: list[V]
    next_position: int | None


class Table(Generic[K, V]):
    """An insertion-ordered table with O(1) get/put/delete and O(page) paging from a position.

    Rows keep the position they were inserted at; deleting leaves a tombstone, so a pagination
    position stays valid while other rows come and go (AWS-style stable listing order).
    """

    __slots__ = ("_keys", "_live", "_rows")

    def __init__(self) -> None:
        self._keys: list[K | None] = []
        self._rows: dict[K, tuple[int, V]] = {}
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __repr__(self) -> str:
        return f"<Table rows={self._live} slots={len(self._keys)}>"

    def get(self, key: K) -> V | None:
        """The row at ``key``, or ``None``."""
        found = self._rows.get(key)
        return found[1] if found is not None else None

    def put(self, key: K, value: V) -> None:
        """Insert a row at the end, or replace it in place when ``key`` exists."""
        found = self._rows.get(key)
        if found is not None:
            self._rows[key] = (found[0], value)
            return
        self._rows[key] = (len(self._keys), value)
        self._keys.append(key)
        self._live += 1

    def move_to_end(self, key: K, value: V) -> None:
        """Replace the row and move it to the end of the listing order."""
        self.delete(key)
        self.put(key, value)

    def delete(self, key: K) -> V | None:
        """Remove and return the row at ``key`` (``None`` when absent)."""
        found = self._rows.pop(key, None)
        if found is None:
            return None
        self._keys[found[0]] = None
        self._live -= 1
        if len(self._keys) > 64 and self._live * 4 < len(self._keys):
            self._compact_tail()
        return found[1]

    def _compact_tail(self) -> None:
        # Trailing tombstones can go without moving any live position.
        keys = self._keys
        while keys and keys[-1] is None:
            keys.pop()

    def values(self) -> Iterator[V]:
        """Every live row, in listing order."""
        rows = self._rows
        for key in self._keys:
            if key is not None:
                yield rows[key][1]

    def page(self, start: int, limit: int, keep: Callable[[V], bool] | None = None) -> Page[V]:
        """Up to ``limit`` rows from position ``start`` on, optionally filtered by ``keep``.

        The page carries a next position only when another matching row exists, so the last
        page never has a token (botocore stops on a missing token, and AWS omits it).
        """
        items: list[V] = []
        keys, rows = self._keys, self._rows
        end = len(keys)
        pos = max(start, 0)
        while pos < end and len(items) < limit:
            key = keys[pos]
            pos += 1
            if key is not None:
                value = rows[key][1]
                if keep is None or keep(value):
                    items.append(value)
        # Peek for the next matching row: the next page resumes exactly there.
        while pos < end:
            key = keys[pos]
            if key is not None and (keep is None or keep(rows[key][1])):
                return Page(items, pos)
            pos += 1
        return Page(items, None)

    def clear(self) -> None:
        """Remove every row."""
        self._keys.clear()
        self._rows.clear()
        self._live = 0

    # --------------------------------------------------------------------------- persistence
    def layout(self) -> list[K | None]:
        """The keys in listing order, ``None`` where a deleted row was (for saving the table).

        Pagination tokens carry positions, so a restored table must keep the tombstones too.
        """
        return list(self._keys)

    @classmethod
    def restored(cls, layout: list[K | None], values: Iterable[V]) -> Table[K, V]:
        """A table with ``layout`` (as :meth:`layout` gave it) and the live rows' ``values``.

        :param values: one value per non-``None`` key of ``layout``, in that order
        :raises ValueError: when the values do not match the layout
        """
        table: Table[K, V] = cls.__new__(cls)  # no __init__: its containers are replaced
        if None in layout:
            positions = [pos for pos, key in enumerate(layout) if key is not None]
            live = [layout[pos] for pos in positions]
        else:  # no tombstones, the common case: no Python-level loop at all
            positions, live = range(len(layout)), layout  # type: ignore[assignment]
        rows = dict(zip(live, zip(positions, values, strict=True), strict=True))
        if len(rows) != len(live):
            raise ValueError("a table layout names the same key twice")
        table._keys = list(layout)
        table._rows = rows  # type: ignore[assignment]
        table._live = len(rows)
        return table


_RECORD_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def record_of(obj: Any) -> tuple[Any, ...]:
    """The fields of a dataclass instance as a tuple in declaration order (for saving state).

    ``type(obj)(*record_of(obj))`` rebuilds it. Values are not copied.
    """
    cls = type(obj)
    getter = _RECORD_GETTERS.get(cls)
    if getter is None:
        names = [f.name for f in dataclasses.fields(cls)]
        if len(names) == 1:
            name = names[0]

            def getter(item: Any) -> tuple[Any, ...]:
                return (getattr(item, name),)
        else:
            getter = operator.attrgetter(*names)
        _RECORD_GETTERS[cls] = getter
    return getter(obj)


def params_digest(params: dict[str, Any], skip: tuple[str, ...] = ()) -> bytes:
    """A stable digest of request parameters (key order does not matter)."""
    data = {k: v for k, v in params.items() if k not in skip and v is not None}
    try:
        blob = orjson.dumps(
            data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=repr
        )
    except TypeError:
        # Integers beyond 64 bits: orjson refuses them; the slower stdlib encoder does not.
        blob = json.dumps(data, sort_keys=True, default=repr).encode()
    return hashlib.blake2b(blob, digest_size=16).digest()


class TokenCodec:
    """Opaque pagination tokens bound to the request they continue.

    A token packs the position to resume from, a digest of the request's other parameters and a
    MAC; a token used with other parameters, forged or mangled, does not decode. Tokens are
    base32 (``[A-Z2-7]``, 39 characters, padding stripped): the only alphabet that every
    NextToken pattern of the five models admits (Proton's ``[A-Za-z0-9+=/]``, managed
    integrations' ``[a-zA-Z0-9=_-]``...).
    """

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = secret

    @property
    def secret(self) -> bytes:
        """The MAC key (saved with the emulator's state, so that issued tokens stay valid)."""
        return self._key

    def encode(self, position: int, binding: bytes) -> str:
        """A token for ``position`` within the listing bound to ``binding``."""
        body = struct.pack(">Q", position) + binding[:8]
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:8]
        return base64.b32encode(body + mac).decode().rstrip("=")

    def decode(self, token: str, binding: bytes) -> int | None:
        """The position in ``token``, or ``None`` when it is not a token for this request."""
        try:
            raw = base64.b32decode(token.encode() + b"=" * (-len(token) % 8))
        except (ValueError, UnicodeEncodeError, binascii.Error):
            return None
        if len(raw) != 24:
            return None
        body, mac = raw[:16], raw[16:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:8]
        if not hmac.compare_digest(mac, expected) or body[8:] != binding[:8]:
            return None
        return int(struct.unpack(">Q", body[:8])[0])


@dataclass(slots=True)
class IdempotencyEntry:
    """What the first request with a token did: its digest, and its answer once it has one."""

    digest: bytes
    created: float
    response: tuple[int, dict[str, str], bytes] | None = None


class IdempotencyCache:
    """Client tokens per (account, region, operation, token), kept for ``ttl`` seconds."""

    __slots__ = ("_entries", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str, str, str], IdempotencyEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str, str, str], now: float) -> IdempotencyEntry | None:
        """The live entry for ``key`` (expired entries are dropped)."""
        entry = self._entries.get(key)
        if entry is not None and now - entry.created > self.ttl:
            del self._entries[key]
            return None
        return entry

    def begin(self, key: tuple[str, str, str, str], digest: bytes, now: float) -> IdempotencyEntry:
        """Record that a request with this token is now in flight."""
        entry = IdempotencyEntry(digest, now)
        self._entries[key] = entry
        return entry

    def abandon(self, key: tuple[str, str, str, str]) -> None:
        """Forget a token whose request failed, so that a retry runs again."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every token."""
        self._entries.clear()

    def items(self) -> Iterator[tuple[tuple[str, str, str, str], IdempotencyEntry]]:
        """Every entry with its key (expired ones included until a lookup drops them)."""
        return iter(list(self._entries.items()))

    def put(self, key: tuple[str, str, str, str], entry: IdempotencyEntry) -> None:
        """Store ``entry`` as it is (used when loading a saved state)."""
        self._entries[key] = entry
