"""The part of a request whose cost grows with its body, kept off the event loop when it is big.

Every request is parsed and validated before anything touches the emulator's state. Both are
linear in the size of the body (patterns are matched by RE2 or by a provably linear ``re``, see
:mod:`harness.model._matcher`), so a small body costs microseconds and is checked inline, on the
fast path. A body over :data:`INLINE_BODY_BYTES` is checked in a worker thread instead: one
thread, so that it competes with the event loop alone for the GIL, which Python hands over at
least every ``sys.getswitchinterval()`` (5 ms): health checks and other connections keep being
served while a megabyte of JSON is validated. The stateful rest of the request (throttling,
idempotency, the handler) then runs back on the event loop, as for any other request.

What does not grow with the body, compiling the model's patterns and checks, is done once when
the emulator starts (:func:`warm_up`), not by the first request that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from harness.emulator._context import validation_error_code
from harness.emulator._wire import WireError
from harness.model import format_issues, pattern_matcher

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from harness.emulator._router import Route
    from harness.model import ServiceModel

__all__ = ["INLINE_BODY_BYTES", "Rejection", "check_in_worker", "check_request", "warm_up"]

#: Bodies up to this size are parsed and validated on the event loop (worst case a few ms).
INLINE_BODY_BYTES = 16 * 1024

#: Why a request was refused before reaching the state: (error code, message, HTTP status).
Rejection = tuple[str, str, int]


def warm_up(models: Iterable[ServiceModel]) -> None:
    """Compile every pattern and every operation's checks now, before the first request.

    Compiling is the one cost that does not grow with the request: up to ~0.3 s for a pattern of
    Unicode categories (and ~0.8 s once for the category table), paid by whichever request used
    it first, on the event loop. Paid at start instead (about 2 s for the five services).
    """
    for model in models:
        for shape in model.shapes.values():
            if shape.pattern:
                pattern_matcher(shape.pattern)
        for name in model.operations:
            op = model.operation(name)
            if op.input is not None:
                model.validator.prepare(op.input)


def check_request(
    route: Route,
    query: Mapping[str, Any],
    getall: Callable[[str], list[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any] | Rejection:
    """Parse and validate a request: its parameters, or why it is refused.

    Reads nothing but its arguments and the (compiled) model, so it may run in any thread.
    """
    model, op = route.service, route.operation
    try:
        params = route.codec.parse(route.labels, query, getall, headers, body)
    except WireError as exc:
        return "SerializationException", str(exc), 400
    issues = op.validate(params)
    if issues:
        # Unknown members are ignored, as AWS services do with fields they do not know.
        issues = [i for i in issues if i.constraint != "unknown"]
        if issues:
            return validation_error_code(model, op), format_issues(issues), 400
    return params


async def check_in_worker(
    route: Route,
    query: Mapping[str, Any],
    getall: Callable[[str], list[str]],
    headers: Mapping[str, str],
    body: bytes,
    limiter: anyio.CapacityLimiter,
) -> dict[str, Any] | Rejection:
    """:func:`check_request` in a worker thread; ``limiter`` (of 1) keeps it to one thread."""
    op = route.operation
    if op.input is not None:
        # Compile every check now, on the event loop: the worker then only reads the
        # validator's cache, which the event loop may be filling for other operations.
        op.service.validator.prepare(op.input)
    return await anyio.to_thread.run_sync(
        check_request, route, query, getall, headers, body, limiter=limiter
    )
