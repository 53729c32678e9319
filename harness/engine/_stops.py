"""Stopping a run before every item is done: the stop request, the waits it interrupts, and the
circuit breaker.

A stop takes effect at the engine's decision points: a worker takes no new item, an item does not
send another attempt, and the waits of an item that sent nothing yet (its rate bucket, the backoff
before a retry) end at once. Those items are *abandoned*: neither done nor failed, not journaled,
so ``--resume`` runs them. An immediate stop also cancels the calls on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from harness.engine._events import Stopped, StopRequested

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from harness.engine._events import Event, StopCause
    from harness.transport import Reply

__all__ = ["Abandoned", "EndpointHealth", "StopControl"]


class Abandoned(Exception):
    """The run is stopping: this item is left unfinished (pending for --resume), not failed."""


@dataclass(slots=True)
class EndpointHealth:
    """The circuit breaker's count for one endpoint (a service in a region)."""

    name: str
    failures: int = 0


class StopControl:
    """One run's stop state.

    :param emit: where :class:`StopRequested` goes
    :param max_connection_failures: consecutive connection failures to one endpoint that stop
        the run; 0 turns the breaker off
    :param in_flight: counts the calls on the wire (read only when a stop is asked for)
    """

    def __init__(
        self,
        emit: Callable[[Event], None],
        max_connection_failures: int,
        in_flight: Callable[[], int],
    ) -> None:
        self._emit = emit
        self._in_flight = in_flight
        self.max_connection_failures = max_connection_failures
        #: why the run was asked to stop, or None
        self.stopped: Stopped | None = None
        #: the run's scope, cancelled by an immediate stop (set while the run runs)
        self.scope: anyio.CancelScope | None = None
        self._waits: set[anyio.CancelScope] = set()
        self._endpoints: dict[tuple[str, str], EndpointHealth] = {}

    def endpoint(self, service: str, region: str) -> EndpointHealth:
        """The breaker's count for ``service`` in ``region`` (shared by the steps calling it)."""
        key = (service, region)
        health = self._endpoints.get(key)
        if health is None:
            health = self._endpoints[key] = EndpointHealth(f"{service} in {region}")
        return health

    def request(
        self, reason: str, *, cause: StopCause, exit_code: int = 1, immediate: bool = False
    ) -> None:
        """Record the stop (the first reason is kept; a later one can only make it immediate),
        end the interruptible waits, and cancel the run's scope when immediate."""
        if self.stopped is None:
            self.stopped = Stopped(cause, reason, exit_code)
        elif not immediate:
            return
        self._emit(StopRequested(self.stopped, self._in_flight(), immediate))
        for scope in list(self._waits):
            scope.cancel()
        if immediate and self.scope is not None:
            self.scope.cancel()

    async def wait(self, waiting: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Await ``waiting(*args)`` unless the run stops first: then raise :class:`Abandoned`."""
        if self.stopped is None:
            with anyio.CancelScope() as scope:
                self._waits.add(scope)
                try:
                    await waiting(*args)
                finally:
                    self._waits.discard(scope)
        if self.stopped is not None:
            raise Abandoned

    def watch(self, endpoint: EndpointHealth, reply: Reply, kind: str) -> None:
        """After each attempt: refused credentials stop the run, and so do
        ``max_connection_failures`` consecutive replies without an HTTP answer."""
        if kind == "denied":
            self.request(
                f"credentials refused by {endpoint.name}: {reply.error_code or reply.status}: "
                f"{reply.error_message[:200]}",
                cause="denied",
            )
        elif reply.status == 0:
            endpoint.failures += 1
            if self.max_connection_failures and endpoint.failures >= self.max_connection_failures:
                self.request(
                    f"{endpoint.failures} consecutive connection failures to {endpoint.name} "
                    f"(last: {reply.error_code}: {reply.error_message[:200]})",
                    cause="breaker",
                )
        else:
            endpoint.failures = 0  # any HTTP answer shows the endpoint is there
