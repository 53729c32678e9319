"""One client connection of the emulator's HTTP server (:mod:`harness.emulator._http`).

A :class:`_Connection` reads requests from the bytes it receives, answers them in order
(pipelining, answers produced by tasks), and enforces the per-connection side of
:class:`~harness.emulator._http_parse.Limits`: the head and body timeouts, the idle timeout, and
its share of the bytes of incomplete requests the server holds.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import orjson

from harness.emulator._http_parse import (
    BadRequest,
    Limits,
    RequestHead,
    parse_head,
    read_chunked,
)

if TYPE_CHECKING:
    from harness.emulator._http import HttpServer

__all__: list[str] = []

_log = logging.getLogger("harness.emulator._http")

Response = tuple[int, dict[str, str], bytes]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_QUEUED = 64  # pipelined requests in progress per connection before it stops reading


def _status_line(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}\r\n"


_STATUS_LINES = {int(s): _status_line(int(s)) for s in HTTPStatus}


class _Clock:
    """The ``Date`` header line, refreshed every tick of the timeout sweep."""

    __slots__ = ("date",)

    def __init__(self) -> None:
        self.date = ""
        self.refresh()

    def refresh(self) -> None:
        self.date = f"Date: {email.utils.formatdate(usegmt=True)}\r\n"


# Connection stamps and the timeout sweep read time.monotonic() (~50 ns): the loop's own clock
# is the same one under asyncio, but uvloop's is cached per iteration, and asking for the
# running loop costs more than the clock.
_now = time.monotonic


class _Pending:
    """A response being produced by a task, with what rendering it needs from the request."""

    __slots__ = ("head", "task")

    def __init__(self, task: asyncio.Task[Response], head: RequestHead) -> None:
        self.task = task
        self.head = head


class _Connection(asyncio.Protocol):
    """One client connection: reads requests, answers them in order."""

    __slots__ = (
        "_begun",
        "_buf",
        "_chunks",
        "_closing",
        "_continued",
        "_fresh",
        "_head",
        "_held",
        "_held_head",
        "_last",
        "_out",
        "_parts",
        "_paused",
        "_queue",
        "_server",
        "_transport",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buf: bytes | bytearray = b""  # the start of a request not complete yet
        self._head: RequestHead | None = None  # a request whose body has not fully arrived
        self._continued = False  # 100 Continue sent for self._head
        self._chunks: list[int] = [0, 0]  # chunked body so far: [next chunk offset, bytes]
        self._parts: list[tuple[int, int]] = []
        # Responses not yet written, in request order: bytes when ready, _Pending when not.
        self._queue: deque[bytes | _Pending] = deque()
        self._out: list[bytes] = []  # ready responses to write at the end of data_received
        self._closing = False  # no more requests are read; close once the queue is written
        self._paused = 0  # reasons reading is paused: 1 = transport buffer full, 2 = queue full
        # Timeouts: when data last came, when the request being read began (for a connection
        # that has not sent a whole request yet: when it opened).
        self._last = self._begun = _now()
        self._fresh = True  # no request read yet
        # Bytes of an incomplete request counted in the server's totals (all, and heads).
        self._held = self._held_head = 0

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self._transport = cast("asyncio.Transport", transport)
        server = self._server
        if len(server.connections) >= server.limits.max_connections and not server.make_room():
            # Every connection has an answer in progress: this one cannot be served now.
            self._closing = True
            message = f"the emulator is at its limit of {server.limits.max_connections} connections"
            self._transport.write(self._render(_error_response(503, message), None))
            self._transport.close()
            return
        server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._closing = True
        self._release()
        self._server.forget(self)
        # The answers still being produced are not cancelled: as on AWS, a request that
        # reached the service completes though its client went away, so that a retry with its
        # client token meanwhile is "still in progress" (Greengrass's
        # RequestAlreadyInProgressException), then gets the replayed answer. Injected latency is
        # bounded (EmulatorSettings), so such a request always ends.

    def eof_received(self) -> bool:
        self._closing = True
        # Keep the write side open while answers are still being produced (half-close).
        return bool(self._queue)

    def pause_writing(self) -> None:
        self._pause(1)

    def resume_writing(self) -> None:
        self._resume(1)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        now = _now()
        if not self._buf and self._head is None and not self._fresh:
            self._begun = now  # the first byte of a request
        self._last = now
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data
        pos = 0
        try:
            pos = self._parse(buf)
        except BadRequest as exc:
            self._reject(exc)
            pos = len(buf)
        except Exception:  # a bug here must cost one connection, not the server
            _log.exception("the emulator's HTTP server failed to read a request")
            self._reject(BadRequest(500, "internal error of the emulator's HTTP server"))
            pos = len(buf)
        if pos >= len(buf):
            self._buf = b""
        elif pos or buf is data:
            self._buf = bytearray(memoryview(buf)[pos:])
        if self._buf or self._held:
            self._hold()
        self._flush()

    def _hold(self) -> None:
        """Count the incomplete request's bytes in the server's totals; reject it past a cap."""
        server = self._server
        held = len(self._buf)
        head = held if self._head is None else 0
        server.buffered += held - self._held
        server.buffered_heads += head - self._held_head
        self._held, self._held_head = held, head
        limits = server.limits
        if held and (
            server.buffered > limits.max_buffered
            or server.buffered_heads > limits.max_buffered_heads
        ):
            self._release()
            self._reject(
                BadRequest(503, "the emulator holds too many incomplete requests; retry later")
            )

    def _release(self) -> None:
        """Free the incomplete request (its memory and its share of the server's total)."""
        self._buf = b""
        self._head = None
        self._chunks[:] = [0, 0]
        self._parts = []
        self._server.buffered -= self._held
        self._server.buffered_heads -= self._held_head
        self._held = self._held_head = 0

    def _flush(self) -> None:
        """Write the responses made ready by the data just received, in one write."""
        out = self._out
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if self._closing and not self._queue:
            self._close()

    # ------------------------------------------------------------------------- requests
    def _parse(self, buf: bytes | bytearray) -> int:
        """Answer every complete request in ``buf``; the offset of the first byte left over."""
        limits = self._server.limits
        pos, end = 0, len(buf)
        while pos < end and not self._closing:
            head = self._head
            if head is None:
                if buf.startswith(b"\r\n", pos):
                    pos += 2  # an empty line before a request line is allowed (RFC 9112 2.2)
                    continue
                stop = buf.find(b"\r\n\r\n", pos, pos + limits.max_head + 4)
                if stop < 0:
                    _check_partial_head(buf, pos, limits)
                    return pos
                head = parse_head(buf, pos, stop, limits)
                pos = stop + 4
                self._head = head
                self._continued = False
            if head.chunked:
                got = read_chunked(buf, pos, self._chunks, self._parts, limits)
                if got is None:
                    self._maybe_continue(head)
                    return pos
                body, pos = got
                self._chunks[:] = [0, 0]
                self._parts = []
            else:
                size = head.length
                if end - pos < size:
                    self._maybe_continue(head)
                    return pos
                body = bytes(buf[pos : pos + size]) if size else b""
                pos += size
            self._head = None
            self._fresh = False
            self._dispatch(head, body)
        return pos

    def _maybe_continue(self, head: RequestHead) -> None:
        if head.expect_continue and not self._continued:
            self._continued = True
            self._emit(_CONTINUE)

    def _dispatch(self, head: RequestHead, body: bytes) -> None:
        if not head.keep_alive:
            self._closing = True
        try:
            answer = self._server.app(head.method, head.path, head.query, head.headers, body)
        except Exception:
            _log.exception("the emulator failed on %s %s", head.method, head.path)
            answer = _error_response(500, "internal error of the emulator")
        if isinstance(answer, tuple):
            self._emit(self._render(answer, head))
            return
        task: asyncio.Task[Response] = asyncio.get_running_loop().create_task(answer)
        self._queue.append(_Pending(task, head))
        self._server.tasks.add(task)
        task.add_done_callback(self._task_done)
        if len(self._queue) >= _MAX_QUEUED:
            self._pause(2)

    def _reject(self, exc: BadRequest) -> None:
        """Answer a request that cannot be read and stop reading this connection."""
        self._closing = True
        self._head = None
        response = _error_response(exc.status, exc.message)
        self._emit(self._render(response, None))

    def _emit(self, data: bytes) -> None:
        """Send ``data`` after every response before it."""
        if self._queue:
            self._queue.append(data)
        else:
            self._out.append(data)

    def _task_done(self, task: asyncio.Task[Response]) -> None:
        self._server.tasks.discard(task)
        queue = self._queue
        ready: list[bytes] = []
        while queue:
            item = queue[0]
            if isinstance(item, _Pending):
                if not item.task.done():
                    break
                ready.append(self._render(_task_result(item), item.head))
            else:
                ready.append(item)
            queue.popleft()
        if ready and self._transport is not None:
            self._transport.write(b"".join(ready))
        if len(queue) < _MAX_QUEUED:
            self._resume(2)
        if self._closing and not queue:
            self._close()

    def _render(self, response: Response, head: RequestHead | None) -> bytes:
        """Status line, headers and body as the bytes to write."""
        status, headers, body = response
        text = _STATUS_LINES.get(status) or _status_line(status)
        if status in (204, 304) or 100 <= status < 200:
            # No body and no Content-Length (RFC 9110 6.4.1, 8.6): a body here would be read
            # as the start of the next answer on a kept-alive connection.
            body = b""
            text += self._server.clock.date
        else:
            text += f"{self._server.clock.date}Content-Length: {len(body)}\r\n"
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # no response splitting through a value
                value = value.replace("\r", " ").replace("\n", " ")
            text += f"{name}: {value}\r\n"
        if head is None or not head.keep_alive:
            text += "Connection: close\r\n"
        elif head.http10:
            text += "Connection: keep-alive\r\n"
        data = (text + "\r\n").encode()
        if head is not None and head.method == "HEAD":
            return data
        return data + body

    # ------------------------------------------------------------------ flow control
    def _pause(self, reason: int) -> None:
        if not self._paused and self._transport is not None:
            self._transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and self._transport is not None:
                self._transport.resume_reading()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()  # writes what is buffered first

    def waiting_since(self) -> float | None:
        """Since when this connection has waited for its client (``None``: answers in progress).

        The start of the request being read, or of the connection before its first request;
        for an idle kept-alive connection, the end of its last request.
        """
        if self._queue or self._transport is None:
            return None
        if self._buf or self._head is not None or self._fresh:
            return self._begun
        return self._last

    def expire(self, now: float, limits: Limits) -> None:
        """Close this connection if its client has been too slow (see :class:`Limits`)."""
        transport = self._transport
        if transport is None or self._queue:
            return  # answers in progress take as long as they take (latency is bounded)
        if self._closing or self._paused & 1:
            # Answers written but not read: a client that stopped reading holds the buffer.
            if now - self._last > limits.idle_timeout:
                self._release()
                transport.abort()
            return
        if self._head is not None:
            if now - self._last > limits.header_timeout:
                self.timeout(f"no part of the request body came for {limits.header_timeout:g} s")
        elif self._buf:
            if now - self._begun > limits.header_timeout:
                self.timeout(f"the request head took longer than {limits.header_timeout:g} s")
        elif self._fresh:
            if now - self._begun > limits.header_timeout:
                self.shut()  # connected but sent nothing
        elif now - self._last > limits.idle_timeout:
            self.shut()

    def timeout(self, message: str) -> None:
        """Answer the request being read with a 408 and close (a client too slow to send it)."""
        self._release()
        self._reject(BadRequest(408, message))
        self._flush()

    def evict(self, max_connections: int) -> None:
        """Close to make room for a new connection (the server is at its connection cap)."""
        if self._closing and self._transport is not None:
            self._release()
            self._transport.abort()  # answered, but its client does not read the answer
        elif self._buf or self._head is not None:
            self._release()
            self._reject(
                BadRequest(503, f"the emulator is at its limit of {max_connections} connections")
            )
            self._flush()
        else:
            self.shut()

    def shut(self) -> None:
        """Close at once (server shutdown, an idle connection)."""
        self._closing = True
        self._release()
        self._close()


def _check_partial_head(buf: bytes | bytearray, pos: int, limits: Limits) -> None:
    """Reject an incomplete head early when it already cannot be a request."""
    if len(buf) - pos > limits.max_head:
        raise BadRequest(400, "the request headers are too large")
    first = buf[pos]
    # A request starts with an upper-case method name (or the CR of an empty line before it):
    # anything else (a TLS handshake, binary junk) is answered now, not after 64 KiB.
    if not 65 <= first <= 90 and first != 13:
        raise BadRequest(400, "not an HTTP request")
    line_end = buf.find(b"\r\n", pos)
    if line_end >= 0:
        parse_head(buf, pos, line_end, limits, request_line_only=True)


def _task_result(item: _Pending) -> Response:
    task = item.task
    if task.cancelled():
        return _error_response(503, "the emulator is shutting down")
    exc = task.exception()
    if exc is not None:
        _log.error("the emulator failed on %s %s", item.head.method, item.head.path, exc_info=exc)
        return _error_response(500, "internal error of the emulator")
    return task.result()


#: Error codes of the answers the server gives itself, named like AWS's (botocore reads the
#: code from ``x-amzn-ErrorType`` for rest-json and from ``__type`` for json).
_ERROR_CODES = {
    400: "BadRequestException",
    408: "RequestTimeoutException",
    413: "RequestEntityTooLargeException",
    500: "InternalFailure",
    503: "ServiceUnavailableException",
    505: "HttpVersionNotSupportedException",
}


def _error_response(status: int, message: str) -> Response:
    code = _ERROR_CODES.get(status, "BadRequestException")
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    return status, headers, orjson.dumps({"__type": code, "message": message})
