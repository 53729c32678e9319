"""A TCP proxy on 127.0.0.1 that cuts a share of the requests it forwards (a test helper).

It forwards bytes both ways between a client and an upstream server. Each chunk the client sends
(for HTTP/1.1 over keep-alive connections: a request, or the head of one) is, with probability
``cut_share``, forwarded to the upstream and then *cut*: whatever the client sends in the next
``cut_delay`` seconds (the rest of the request) still goes to the server, nothing comes back, and
then both connections are reset (``SO_LINGER`` 0, so the client
sees ``ECONNRESET``) or closed (``mode="drop"``). The server has the request and processes it;
the client never sees the answer. That is what a flaky network does to a create request, and
what makes a client retry a call the server is still working on.

It runs its own event loop in a thread, so that tests can point a child process at it::

    with CuttingProxy(upstream_url, cut_share=0.03, seed=1) as proxy:
        subprocess.run([..., "--endpoint", proxy.url])
        print(proxy.cuts, proxy.requests)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["CuttingProxy"]

_CHUNK = 65536


class CuttingProxy:
    """Forward 127.0.0.1:<port> to ``upstream``, cutting ``cut_share`` of the client's chunks.

    :param upstream: ``http://host:port`` of the server
    :param cut_share: the probability that a forwarded chunk is cut (0 forwards everything)
    :param mode: ``"reset"`` (RST to both sides) or ``"drop"`` (a plain close)
    :param cut_delay: seconds between forwarding a chunk and cutting its connection
    :param seed: seeds the decisions, so a run cuts the same chunks again
    """

    def __init__(
        self,
        upstream: str,
        *,
        cut_share: float = 0.0,
        mode: Literal["reset", "drop"] = "reset",
        cut_delay: float = 0.05,
        seed: int | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port; got {upstream!r}")
        if not 0.0 <= cut_share <= 1.0:
            raise ValueError(f"cut_share must be within [0, 1]; got {cut_share!r}")
        self.upstream = (parts.hostname, parts.port)
        self.cut_share = cut_share
        self.mode = mode
        self.cut_delay = cut_delay
        self._rng = random.Random(seed)
        #: Connections accepted, chunks forwarded client -> server, and chunks cut.
        self.connections = 0
        self.requests = 0
        self.cuts = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # --------------------------------------------------------------------------- lifecycle
    def start(self) -> CuttingProxy:
        """Start listening on a free port (``self.url``) in a background thread."""
        self._thread = threading.Thread(target=self._main, name="cutting-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the proxy did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"the proxy did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        """Stop listening and close every connection; waits for the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> CuttingProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), which runs in the test's thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        self._server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        await self._stop.wait()
        self._server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------------- forwarding
    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_w)
            return
        cut = asyncio.Event()
        upstream = asyncio.create_task(self._pipe(server_r, client_w, cut))
        try:
            while not cut.is_set():
                data = await client_r.read(_CHUNK)
                if not data:
                    break
                self.requests += 1
                server_w.write(data)
                await server_w.drain()
                if self.cut_share and self._rng.random() < self.cut_share:
                    self.cuts += 1
                    cut.set()
                    # The answer, if it comes, is never forwarded (the pipe checks `cut`). The
                    # rest of the request (a client may write its head and body apart) still
                    # goes to the server for `cut_delay`, then both sides are cut.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.cut_delay):
                            while data := await client_r.read(_CHUNK):
                                server_w.write(data)
                                await server_w.drain()
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            cut.set()
            upstream.cancel()
            with contextlib.suppress(BaseException):
                await upstream
            if self.mode == "reset":
                _reset(client_w)
                _reset(server_w)
            else:
                for writer in (client_w, server_w):
                    with contextlib.suppress(OSError):
                        writer.close()

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while not cut.is_set():
                data = await reader.read(_CHUNK)
                if not data or cut.is_set():
                    break
                writer.write(data)
                await writer.drain()
        if not cut.is_set():
            # The server closed: pass the close on to the client.
            with contextlib.suppress(OSError):
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer's next read fails with ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
