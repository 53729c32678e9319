"""A transport that answers from a function: for tests of everything above the seam."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from harness.transport._types import Call, Reply

__all__ = ["MockTransport"]

Handler = Callable[[Call], Reply | Awaitable[Reply]]


class MockTransport:
    """Answers each call with ``handler(call)`` (sync or async) and records every call.

    >>> transport = MockTransport(lambda call: Reply(200, output={}))
    """

    def __init__(
        self, handler: Handler, *, identity: str = "mock", region: str = "us-east-1"
    ) -> None:
        self._handler = handler
        self.identity = identity
        self.region = region
        self.calls: list[Call] = []
        self.closed = False

    async def send(self, call: Call) -> Reply:
        """Record ``call`` and answer it with the handler."""
        self.calls.append(call)
        result = self._handler(call)
        if inspect.isawaitable(result):
            return await result
        return result

    async def aclose(self) -> None:
        """Mark the transport closed."""
        self.closed = True
