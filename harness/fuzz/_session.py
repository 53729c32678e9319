"""Sending fuzz requests from synchronous Hypothesis tests through the async transport.

Hypothesis test bodies are synchronous and aiobotocore is asyncio: a :class:`FuzzSession` runs an
event loop on a thread (an anyio blocking portal) that owns the transport, and every call made
from a test body is handed to it with ``portal.call``. Calls wait for the same token buckets as
the engine's (one per identity, region, service and operation, at the model's quotas), so a
suite against real AWS stays inside the quotas; throttled attempts are retried with back-off,
because a throttle says nothing about the contract.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio
from anyio.from_thread import start_blocking_portal

from harness.model import load_service
from harness.stats import StatsBook
from harness.throttle import BucketRegistry
from harness.transport import AioBotocoreTransport, Call, classify

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType

    from anyio.from_thread import BlockingPortal

    from harness.transport import Reply, Transport

__all__ = ["FuzzSession"]

#: Rate of every bucket when the target has no quotas to respect (an emulator, moto).
_UNLIMITED_TPS = 1e6
#: botocore's serializers raise these for values of the wrong type (a string for a timestamp, a
#: dict for a blob) before anything is sent: such a request never reaches the target.
_CLIENT_SIDE = (TypeError, ValueError, AttributeError, KeyError, OverflowError)
_CLIENT_SIDE_CODES = frozenset({"ParamValidationError", "ValidationError"})


class FuzzSession:
    """Synchronous sending for the fuzzers: throttled, retried on throttling, timed.

    Use it as a context manager (it starts and stops the event loop thread).

    :param endpoint_url: the target (``None``: AWS's own endpoints)
    :param region: the region (``None``: the standard chain, else us-east-1)
    :param profile: a named profile for AWS
    :param credentials: ``(access key, secret key)`` instead of the default chain
    :param quotas: wait for the model's quotas (for AWS); otherwise buckets do not limit
    :param max_attempts: attempts per call while the target throttles
    :param transport: a transport to use instead of an :class:`AioBotocoreTransport` (tests);
        the error-type check needs one that fills :attr:`Reply.body`
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        credentials: tuple[str, str] | None = None,
        quotas: bool = False,
        max_attempts: int = 6,
        transport: Transport | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self._transport_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region": region,
            "profile": profile,
            "credentials": credentials,
            "max_connections": 8,
            "raw": True,
        }
        self._transport = transport
        self.buckets = BucketRegistry(
            None if quotas else (lambda _s, _o: _UNLIMITED_TPS), adaptive=quotas
        )
        self.stats = StatsBook()
        self.max_attempts = max_attempts
        self._portal: BlockingPortal | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        # Jitter for the back-off only: seeded, so that a run is as repeatable as it can be.
        self._rng = random.Random(0)

    @property
    def region(self) -> str:
        """The region calls go to when they name none."""
        return self.transport.region

    @property
    def transport(self) -> Transport:
        """The transport (available inside the ``with`` block)."""
        if self._transport is None:
            raise RuntimeError("FuzzSession is not open: use it in a with block")
        return self._transport

    def __enter__(self) -> FuzzSession:
        self._portal_cm = start_blocking_portal(backend="asyncio")
        self._portal = self._portal_cm.__enter__()
        if self._transport is None:
            self._transport = AioBotocoreTransport(**self._transport_args)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._portal is not None and self._portal_cm is not None
        try:
            if self._transport is not None:
                self._portal.call(self._transport.aclose)
        finally:
            self._portal_cm.__exit__(exc_type, exc, tb)
            self._portal = self._portal_cm = None

    def call(self, service: str, operation: str, params: dict[str, Any]) -> Reply | None:
        """Send one call and wait for its answer.

        :returns: the last answer (after retries while throttled), or ``None`` when botocore
            could not serialize the parameters, so that nothing reached the target
        """
        if self._portal is None:
            raise RuntimeError("FuzzSession is not open: use it in a with block")
        return self._portal.call(self._send, Call(service, operation, params))

    def throttled(self, service: str, operation: str, reply: Reply) -> bool:
        """Whether ``reply`` is a throttle (still, after every retry): nothing to judge."""
        op = load_service(service).operation(operation)
        return classify(reply, op) == "throttled"

    async def _send(self, call: Call) -> Reply | None:
        transport = self.transport
        region = call.region or transport.region
        op = load_service(call.service).operation(call.operation)
        key = (transport.identity, region, call.service, op.name)
        bucket = self.buckets.bucket(*key)
        controller = self.buckets.controller(*key)
        stats = self.stats.stats(f"{call.service}.{op.name}")
        started = anyio.current_time()
        reply: Reply | None = None
        attempts = 0
        for attempt in range(self.max_attempts):
            await bucket.acquire()
            sent = anyio.current_time()
            try:
                reply = await transport.send(call)
            except _CLIENT_SIDE:
                return None
            if reply.status == 0 and reply.error_code in _CLIENT_SIDE_CODES:
                return None
            attempts += 1
            kind = classify(reply, op)
            stats.record_attempt(
                anyio.current_time() - sent,
                throttled=kind == "throttled",
                error_code=reply.error_code,
            )
            if kind != "throttled":
                if controller is not None and reply.ok:
                    controller.on_success()
                break
            if controller is not None:
                controller.on_throttle()
            # Full-jitter exponential back-off, at least what the service asked for.
            delay = self._rng.uniform(0, min(20.0, 0.2 * 2**attempt))
            await anyio.sleep(max(delay, reply.retry_after or 0.0))
        assert reply is not None
        stats.record_call(
            anyio.current_time() - started,
            ok=reply.ok,
            attempts=attempts,
            error_code=reply.error_code,
            at=started,
        )
        return reply
