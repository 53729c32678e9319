"""The emulator's HTTP server: one port for every service, plus the admin API under /_harness/.

Requests reach :class:`~harness.emulator._core.EmulatorCore` through the emulator's own lean
HTTP/1.1 server (:mod:`harness.emulator._http`, about half the CPU per request of aiohttp's), or
through aiohttp with ``Emulator(..., http="aiohttp")``. Both serve the same admin API.

Admin API:

* ``GET  /_harness/health``  -> ``{"status": "ok"}``
* ``GET  /_harness/stats``   -> requests, errors, throttles and faults per operation; resources
* ``POST /_harness/reset``   -> forget all state
* ``PUT  /_harness/config``  -> change settings while running (JSON object of settings)
* ``POST /_harness/snapshot`` -> save the whole state as ``{"name": NAME}``
* ``POST /_harness/restore``  -> replace the whole state by snapshot ``{"name": NAME}``
* ``GET  /_harness/snapshots`` -> the named snapshots, the state directory, periodic saves

With ``state_dir`` the state is loaded at start, saved periodically while it changes and on
shutdown (:mod:`harness.emulator._snapshots`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Literal

import orjson

from harness.emulator._core import EmulatorCore
from harness.emulator._http import HttpServer, Query
from harness.emulator._settings import EmulatorSettings
from harness.emulator._snapshots import SNAPSHOT_ACTIONS, StateStore
from harness.errors import HarnessError, InvalidArgument

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Collection, Coroutine, Mapping
    from types import TracebackType

    from aiohttp import web
    from aiohttp.web_request import BaseRequest

    from harness.emulator._core import Response

__all__ = ["Emulator", "EmulatorThread", "admin", "serve"]

_JSON = {"Content-Type": "application/json"}
_NO_QUERY = Query()


def admin(
    core: EmulatorCore, method: str, path: str, body: bytes, store: StateStore | None = None
) -> Response:
    """Answer a request to the admin API (``path`` starts with ``/_harness/``).

    :param store: answers the snapshot endpoints (without one they are not found)
    """
    action = (method, path.removeprefix("/_harness/").rstrip("/"))
    if store is not None and action[1] in SNAPSHOT_ACTIONS:
        return store.admin(method, action[1], body)
    if action == ("GET", "health"):
        return _json(200, {"status": "ok"})
    if action == ("GET", "stats"):
        return _json(200, core.stats())
    if action == ("POST", "reset"):
        core.reset()
        return _json(200, {"reset": True})
    if action == ("PUT", "config"):
        try:
            changes = orjson.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise InvalidArgument("the config body must be a JSON object")
            settings = core.configure(changes)
        except (orjson.JSONDecodeError, InvalidArgument) as exc:
            return _json(400, {"message": str(exc)})
        return _json(200, settings.to_json())
    return _json(404, {"message": f"no admin endpoint {action[0]} {path}"})


def _json(status: int, data: Any) -> Response:
    return status, dict(_JSON), orjson.dumps(data)


class Emulator:
    """The emulator as an async context manager, in the running asyncio event loop.

    >>> async with Emulator(port=0) as emu:   # doctest: +SKIP
    ...     print(emu.url)

    :param host: the address to listen on (loopback by default)
    :param port: the port (0 picks a free one; read it back from :attr:`port`)
    :param settings: behaviour settings (throttling, faults, latency, ...)
    :param http: the HTTP server: ``"fast"``, the emulator's own (:mod:`._http`), or
        ``"aiohttp"`` (about twice the CPU per request; kept for comparison)
    :param state_dir: keep the state in this directory: loaded by :meth:`start`, saved every
        ``snapshot_interval`` seconds while it changes and by :meth:`stop`; named snapshots
        are kept there too (without it, in memory)
    :param snapshot_interval: seconds between periodic saves (0: only at stop)
    :param pinned_settings: the settings that keep their value when a saved state is loaded
        (the others take the saved one); by default all of them when ``settings`` is given,
        none when it is not
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4566,
        settings: EmulatorSettings | None = None,
        *,
        http: Literal["fast", "aiohttp"] = "fast",
        state_dir: str | os.PathLike[str] | None = None,
        snapshot_interval: float = 30.0,
        pinned_settings: Collection[str] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if http not in ("fast", "aiohttp"):
            raise InvalidArgument(f"http={http!r}: expected 'fast' or 'aiohttp'")
        self.host = host
        self.port = port
        self.http = http
        self.core = EmulatorCore(settings)
        if pinned_settings is None:
            pinned_settings = (
                [f.name for f in fields(EmulatorSettings)] if settings is not None else []
            )
        self.store = StateStore(
            self.core,
            state_dir,
            interval=snapshot_interval,
            pinned_settings=pinned_settings,
            log=log,
        )
        self._server: HttpServer | None = None
        self._runner: web.ServerRunner | None = None
        self._autosave: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to give SDK clients."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Load the saved state (with a state directory), then start listening.

        :raises StateFileError: when the state directory or its state file cannot be used
        :raises HarnessError: when the address cannot be bound
        """
        self.store.open()
        try:
            await self._listen()
        except BaseException:
            self.store.close()
            raise
        if self.store.autosaves:
            self._autosave = asyncio.get_running_loop().create_task(self.store.autosave())

    async def _listen(self) -> None:
        try:
            if self.http == "aiohttp":
                await self._start_aiohttp()
            else:
                self._server = HttpServer(self._app)
                try:
                    self.port = await self._server.start(self.host, self.port)
                except OSError:
                    self._server = None
                    raise
        except OSError as exc:
            raise HarnessError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from None

    async def stop(self) -> None:
        """Stop listening, close connections, and save the state (with a state directory).

        :raises StateFileError: when the state cannot be saved
        """
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._autosave is not None:
            # Waits for a periodic write in progress, so that the final save is the last one.
            self._autosave.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._autosave
            self._autosave = None
        self.store.close()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _app(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response | Coroutine[Any, Any, Response]:
        """The application behind the fast HTTP server."""
        if path.startswith("/_harness/"):
            return admin(self.core, method, path, body, self.store)
        parsed = Query(query) if query else _NO_QUERY
        return self.core.respond(method, path, parsed, parsed.getall, headers, body)

    # ------------------------------------------------------------------------------ aiohttp
    async def _start_aiohttp(self) -> None:
        from aiohttp import web

        server = web.Server(self._handle_aiohttp, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def _handle_aiohttp(self, request: BaseRequest) -> web.StreamResponse:
        from aiohttp import web

        path = request.rel_url.raw_path
        body = await request.read()
        if path.startswith("/_harness/"):
            status, headers, data = admin(self.core, request.method, path, body, self.store)
        else:
            query = request.query
            status, headers, data = await self.core.handle(
                request.method, path, query, query.getall, request.headers, body
            )
        return web.Response(status=status, headers=headers, body=data)


class EmulatorThread:
    """The emulator on a background thread with its own event loop, for synchronous callers.

    >>> with EmulatorThread() as emu:   # doctest: +SKIP
    ...     boto3.client("iot", endpoint_url=emu.url, ...)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: EmulatorSettings | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        snapshot_interval: float = 30.0,
    ) -> None:
        self.emulator = Emulator(
            host, port, settings, state_dir=state_dir, snapshot_interval=snapshot_interval
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return self.emulator.url

    @property
    def core(self) -> EmulatorCore:
        """The request pipeline and state (for assertions in tests)."""
        return self.emulator.core

    def start(self) -> None:
        """Start the thread and wait until the server listens.

        :raises HarnessError: when the server cannot start
        """
        self._thread = threading.Thread(target=self._run, name="harness-emulator", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.emulator.start())
        except BaseException as exc:
            self._error = exc
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self.emulator.stop())
            except BaseException as exc:  # the final save failed: stop() raises it
                self._error = exc
            loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop thread and return its result (thread-safe access)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(fn), self._loop).result(30)

    def stop(self) -> None:
        """Stop the server, save the state (with a state directory) and join the thread.

        :raises StateFileError: when the state could not be saved
        """
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(120)
            self._thread = None
            if self._error is not None:
                error, self._error = self._error, None
                raise error

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def serve(
    host: str,
    port: int,
    settings: EmulatorSettings,
    announce: Callable[[str], None],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    snapshot_interval: float = 30.0,
    pinned_settings: Collection[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Run the emulator in the foreground until SIGINT or SIGTERM (used by ``harness emulator``).

    :param announce: called with ``listening on http://HOST:PORT`` once the server is ready
    :param state_dir: load the state from there, save it there periodically and at exit
    :param pinned_settings: settings that win over the saved ones (the flags given)
    :param warn: called with one line when a periodic save fails
    :raises StateFileError: when the state cannot be loaded or saved
    """
    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with Emulator(
            host,
            port,
            settings,
            state_dir=state_dir,
            snapshot_interval=snapshot_interval,
            pinned_settings=pinned_settings,
            log=warn,
        ) as emu:
            # The models (~73,000 objects) live as long as the process: freezing them keeps
            # every full collection from walking them again (3-5 µs per request otherwise),
            # and a larger first generation makes collections rarer; requests free their own
            # objects by reference counting.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
            announce(f"listening on {emu.url}")
            await stop.wait()

    uvloop.run(main())
