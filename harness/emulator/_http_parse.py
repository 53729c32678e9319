"""Reading HTTP/1.1 requests for the emulator's server: heads, chunked bodies, headers, queries.

Pure functions and small value types, with no I/O: :mod:`harness.emulator._http` feeds them the
bytes a connection received.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl

from harness.errors import InvalidArgument

__all__ = [
    "BadRequest",
    "Headers",
    "Limits",
    "Query",
    "RequestHead",
    "default_max_connections",
    "parse_head",
    "read_chunked",
]

_T = TypeVar("_T")


# ------------------------------------------------------------------------------ request parts
class Headers(Mapping[str, str]):
    """Request headers with case-insensitive names (repeated headers joined with ``", "``)."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str | _T, /) -> str | _T: ...
    def get(self, name: str, default: Any = None, /) -> Any:
        """The value of header ``name`` (any case), or ``default``."""
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Query(Mapping[str, str]):
    """A query string, percent-decoded like aiohttp's ``request.query``: ``query[key]`` is the
    first value of ``key`` and :meth:`getall` every value."""

    __slots__ = ("_first", "_pairs")

    def __init__(self, raw: str = "") -> None:
        self._pairs = parse_qsl(raw, keep_blank_values=True) if raw else []
        first: dict[str, str] = {}
        for key, value in self._pairs:
            first.setdefault(key, value)
        self._first = first

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, key: str) -> list[str]:
        """Every value of ``key``, in order (empty when absent)."""
        return [value for name, value in self._pairs if name == key]


#: Descriptors kept free for everything but client connections (the listening socket, the event
#: loop, log and state files, an embedding test process's own sockets).
FD_RESERVE = 64
#: The default connection cap never exceeds this, however high the descriptor limit.
MAX_DEFAULT_CONNECTIONS = 4096


def default_max_connections() -> int:
    """Open connections the server accepts by default: the descriptor limit minus a reserve.

    960 at the common soft limit of 1,024 descriptors, so that accepting never fails with
    ``EMFILE`` (which resets new connections); at most :data:`MAX_DEFAULT_CONNECTIONS`.
    """
    soft = 1024
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft <= 0:
            soft = MAX_DEFAULT_CONNECTIONS + FD_RESERVE
    except (ImportError, OSError, ValueError):  # not a POSIX system
        pass
    return max(16, min(soft, MAX_DEFAULT_CONNECTIONS + FD_RESERVE) - FD_RESERVE)


def _count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgument(f"{name}={value!r}: expected a whole number >= {low}")
    return value


def _seconds(name: str, value: object, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= high
    ):
        raise InvalidArgument(
            f"{name}={value!r}: expected seconds, more than 0 and at most {high:g}"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class Limits:
    """What clients may make the server hold: sizes, times and connections.

    :param max_head: bytes of a request line and headers (more: 400, connection closed); the
        default admits the longest modeled request line (a 65,535-character NextToken)
    :param max_body: bytes of a request body (more: 413); the default is three times the largest
        modeled request value (Greengrass's 10 MiB component configuration)
    :param max_connections: connections open at once; at the cap a new connection closes the
        one that has waited longest without an answer in progress, or is refused with a 503
        when every connection has one (default: :func:`default_max_connections`)
    :param header_timeout: seconds a request head may take from its first byte (or a new
        connection to send its first byte), and the longest pause within a request body;
        slower requests get a 408 and their connection is closed
    :param idle_timeout: seconds a kept-alive connection stays open without a request (and a
        client that does not read its answers keeps its connection)
    :param max_buffered: bytes of incomplete requests (heads and bodies) held over all
        connections; a connection that would exceed it gets a 503 and is closed (default: 64 MiB
        or twice ``max_body``)
    :param max_buffered_heads: bytes of incomplete request heads held over all connections
        (503 past it): a head an SDK sends arrives whole, so only slow or huge heads are held,
        and 300 of them cannot hold more than this
    :raises InvalidArgument: naming a value out of range
    """

    max_head: int = 128 * 1024
    max_body: int = 32 * 1024 * 1024
    max_connections: int = field(default_factory=default_max_connections)
    header_timeout: float = 10.0
    idle_timeout: float = 75.0
    max_buffered: int = 0
    max_buffered_heads: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        _count("max_head", self.max_head, 1024)
        _count("max_body", self.max_body, 0)
        _count("max_connections", self.max_connections, 1)
        _count("max_buffered", self.max_buffered, 0)
        _count("max_buffered_heads", self.max_buffered_heads, self.max_head)
        object.__setattr__(
            self, "header_timeout", _seconds("header_timeout", self.header_timeout, 3600)
        )
        object.__setattr__(
            self, "idle_timeout", _seconds("idle_timeout", self.idle_timeout, 24 * 3600)
        )
        if not self.max_buffered:
            object.__setattr__(self, "max_buffered", max(64 * 1024 * 1024, 2 * self.max_body))
        elif self.max_buffered < self.max_body + self.max_head:
            raise InvalidArgument(
                f"max_buffered={self.max_buffered}: expected at least max_body + max_head"
            )


class BadRequest(Exception):
    """A request that cannot be read: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestHead:
    """The request line and headers of one request, and how its body is framed."""

    __slots__ = (
        "chunked",
        "expect_continue",
        "headers",
        "http10",
        "keep_alive",
        "length",
        "method",
        "path",
        "query",
    )

    def __init__(self, method: str, path: str, query: str, http10: bool) -> None:
        self.method = method
        self.path = path  # raw: the router matches raw paths and decodes labels itself
        self.query = query  # raw
        self.http10 = http10
        self.headers = Headers({})
        self.length = 0  # Content-Length (0 when chunked)
        self.chunked = False
        self.keep_alive = not http10
        self.expect_continue = False


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# Header names seen, as sent -> lower case. Validating and lowering a name costs more than the
# lookup, and clients send the same few names over and over. Bounded like any cache of input.
_NAMES: dict[str, str] = {}
_NAMES_MAX = 4096
_MAX_CHUNK_LINE = 4096


def _request_line(line: str) -> RequestHead:
    parts = line.split(" ")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if method not in _METHODS and _TOKEN.fullmatch(method) is None:
        raise BadRequest(400, "malformed method")
    if version == "HTTP/1.1":
        http10 = False
    elif version == "HTTP/1.0":
        http10 = True
    else:
        raise BadRequest(505 if version.startswith("HTTP/") else 400, f"unsupported {version!r}")
    if not target.isascii():
        target = target.encode("latin-1").decode("utf-8", "replace")
    if not target.isprintable():
        raise BadRequest(400, "control characters in the request target")
    if target[:1] != "/":
        if target.startswith(("http://", "https://")):  # absolute form (as sent to proxies)
            slash = target.find("/", target.index("//") + 2)
            target = target[slash:] if slash >= 0 else "/"
        elif not (target == "*" and method == "OPTIONS"):
            raise BadRequest(400, "malformed request target")
    if "#" in target:
        target = target.partition("#")[0]
    path, _, query = target.partition("?")
    return RequestHead(method, path, query, http10)


def parse_head(
    buf: bytes | bytearray, start: int, stop: int, limits: Limits, request_line_only: bool = False
) -> RequestHead:
    """The request head in ``buf[start:stop]`` (without the blank line that ends it).

    :raises BadRequest: when it is not a valid HTTP/1.x request head
    """
    text = buf[start:stop].decode("latin-1")
    lines = text.split("\r\n")
    # A bare CR or LF inside a line would let requests be read differently by different servers.
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        raise BadRequest(400, "bare CR or LF in the request head")
    head = _request_line(lines[0])
    if request_line_only:
        return head
    items: dict[str, str] = {}
    names = _NAMES
    for line in lines[1:]:
        raw, sep, value = line.partition(":")
        name = names.get(raw)
        if name is None:
            if not sep or _TOKEN.fullmatch(raw) is None:  # also obs-fold and space before ':'
                raise BadRequest(400, f"malformed header line {line[:40]!r}")
            if len(names) >= _NAMES_MAX:
                names.clear()
            name = names[raw] = raw.lower()
        value = value.strip(" \t")
        if name in items:
            if name == "content-length":
                if value != items[name]:
                    raise BadRequest(400, "conflicting Content-Length headers")
                continue
            value = f"{items[name]}, {value}"
        items[name] = value
    head.headers = Headers(items)
    encoding = items.get("transfer-encoding")
    length = items.get("content-length")
    if encoding is not None:
        if length is not None or head.http10:
            raise BadRequest(400, "Transfer-Encoding with Content-Length or in HTTP/1.0")
        if encoding.lower() != "chunked":
            raise BadRequest(400, f"unsupported Transfer-Encoding {encoding[:40]!r}")
        head.chunked = True
    elif length is not None:
        if not (length.isascii() and length.isdigit() and len(length) < 19):
            raise BadRequest(400, "malformed Content-Length")
        head.length = int(length)
        if head.length > limits.max_body:
            raise BadRequest(413, f"the request body is larger than {limits.max_body} bytes")
    connection = items.get("connection")
    if connection is not None:
        tokens = {t.strip() for t in connection.lower().split(",")}
        if "close" in tokens:
            head.keep_alive = False
        elif "keep-alive" in tokens:
            head.keep_alive = True
    expect = items.get("expect")
    if expect is not None and not head.http10 and expect.lower() == "100-continue":
        head.expect_continue = True
    return head


def read_chunked(
    buf: bytes | bytearray,
    start: int,
    state: list[int],
    parts: list[tuple[int, int]],
    limits: Limits,
) -> tuple[bytes, int] | None:
    """A chunked body that starts at ``buf[start]``: ``(body, end offset)`` once complete.

    Returns ``None`` while it is incomplete; ``state`` (the offset of the next chunk and the
    bytes so far) and ``parts`` (offset and size of each chunk) keep the progress, relative to
    ``start``, so that the next call resumes instead of starting over.

    :raises BadRequest: on a malformed or oversized body
    """
    pos = start + state[0]
    end = len(buf)
    while True:
        line_end = buf.find(b"\r\n", pos, pos + _MAX_CHUNK_LINE)
        if line_end < 0:
            if end - pos >= _MAX_CHUNK_LINE:
                raise BadRequest(400, "chunk size line too long")
            return None
        size_text = bytes(buf[pos:line_end]).partition(b";")[0].strip(b" \t")
        if _HEX.fullmatch(size_text) is None:
            raise BadRequest(400, "malformed chunk size")
        size = int(size_text, 16)
        if size == 0:
            # The last chunk, then trailer lines (ignored) up to an empty line.
            line = line_end + 2
            while True:
                stop = buf.find(b"\r\n", line)
                if stop < 0:
                    if end - line_end > limits.max_head:
                        raise BadRequest(400, "the trailers are too large")
                    return None
                if stop == line:
                    break
                line = stop + 2
            view = memoryview(buf)
            body = b"".join([view[start + o : start + o + n] for o, n in parts])
            return body, stop + 2
        if state[1] + size > limits.max_body:
            raise BadRequest(413, f"the request body is larger than {limits.max_body} bytes")
        data = line_end + 2
        if end < data + size + 2:
            return None
        if buf[data + size : data + size + 2] != b"\r\n":
            raise BadRequest(400, "chunk data does not end with CRLF")
        parts.append((data - start, size))
        state[1] += size
        pos = data + size + 2
        state[0] = pos - start


# ------------------------------------------------------------------------------------ server
