"""A lean HTTP/1.1 server for the emulator: one :class:`asyncio.Protocol` per connection.

Why not aiohttp: its request and response machinery cost ~45-50 µs per call, more than the whole
emulator pipeline behind it. This server parses a request with a few ``bytes`` operations, calls
the application synchronously and writes the answer with one ``transport.write``; no task, stream
or coroutine exists per request unless the application answers with a coroutine (injected
latency), and then responses still leave in request order.

It speaks the HTTP/1.1 the SDKs use: ``Content-Length`` and ``chunked`` request bodies,
``Expect: 100-continue``, keep-alive and pipelining, ``Connection: close``, HTTP/1.0. What it
cannot read gets a 400 (oversized headers a 400, an oversized body a 413) and the connection is
closed; nothing a client sends can crash it.

Nothing a client holds open is unbounded either (:class:`Limits`): connections are capped (at
the cap the connection waiting longest without an answer in progress makes room), a request
head must arrive within a timeout and a body must keep arriving (slow clients get a 408), idle
kept-alive connections close, and the bytes of incomplete requests are capped over all
connections (503 past it). A connection dropped by its client cancels its answers in progress.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from harness.emulator._http_conn import Response, _Clock, _now
from harness.emulator._http_conn import _check_partial_head as _check_partial_head
from harness.emulator._http_conn import _Connection as _Connection
from harness.emulator._http_parse import (
    BadRequest,
    Headers,
    Limits,
    Query,
    RequestHead,
    parse_head,
    read_chunked,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    #: The application: ``(method, raw path, raw query string, headers, body)`` -> a response,
    #: or a coroutine producing one (awaited in a task of its own).
    App = Callable[[str, str, str, Headers, bytes], Response | Coroutine[Any, Any, Response]]

__all__ = [
    "BadRequest",
    "Headers",
    "HttpServer",
    "Limits",
    "Query",
    "RequestHead",
    "parse_head",
    "read_chunked",
]

_log = logging.getLogger(__name__)


class HttpServer:
    """Serves ``app`` over HTTP/1.1 on one address.

    :param app: called with ``(method, raw path, raw query string, headers, body)`` for every
        request; returns ``(status, headers, body)`` or a coroutine producing it
    :param limits: sizes, timeouts and the connection cap
    """

    def __init__(self, app: App, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()
        self.clock = _Clock()
        self.connections: set[_Connection] = set()
        self.buffered = 0  # bytes of incomplete requests held over all connections
        self.buffered_heads = 0  # of which incomplete heads
        self.tasks: set[asyncio.Task[Response]] = set()
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._drained: asyncio.Event | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` and return the port (the one picked when ``port`` is 0).

        :raises OSError: when the address cannot be bound
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=1024)
        self._tick()
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    def _tick(self) -> None:
        self.clock.refresh()
        now = _now()
        limits = self.limits
        for conn in list(self.connections):
            conn.expire(now, limits)
        # A quarter of the shortest timeout: a slow client is closed at most 25% late.
        period = min(1.0, limits.header_timeout / 4, limits.idle_timeout / 4)
        self._ticker = asyncio.get_running_loop().call_later(max(period, 0.01), self._tick)

    def stats(self) -> dict[str, int]:
        """Open connections and the bytes of incomplete requests held, with their caps."""
        limits = self.limits
        return {
            "connections": len(self.connections),
            "max_connections": limits.max_connections,
            "buffered_bytes": self.buffered,
            "buffered_head_bytes": self.buffered_heads,
        }

    def make_room(self) -> bool:
        """Close the connection that has waited longest for its client; ``False`` if none can go.

        Called at the connection cap: a client holding connections open without completing
        requests (or a pool of idle ones) cannot lock out a new client.
        """
        oldest: _Connection | None = None
        since = math.inf
        for conn in self.connections:
            waiting = conn.waiting_since()
            if waiting is not None and waiting < since:
                oldest, since = conn, waiting
        if oldest is None:
            return False
        oldest.evict(self.limits.max_connections)
        self.connections.discard(oldest)  # closing: no longer counts against the cap
        return True

    def forget(self, conn: _Connection) -> None:
        """Called by a connection once it is closed."""
        self.connections.discard(conn)
        if not self.connections and self._drained is not None:
            self._drained.set()

    async def stop(self) -> None:
        """Stop listening, cancel answers in progress and close every connection."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._server is None:
            return
        self._server.close()
        await asyncio.sleep(0)  # tasks created in the current iteration start (see connection_lost)
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.connections:
            # Wait until the transports are really closed, so that none is left to the
            # garbage collector (it would warn about an unclosed transport).
            self._drained = asyncio.Event()
            for conn in list(self.connections):
                conn.shut()
            try:
                await asyncio.wait_for(self._drained.wait(), 5.0)
            except TimeoutError:
                _log.warning("%d connection(s) did not close", len(self.connections))
        await self._server.wait_closed()
        self._server = None
