"""The request pipeline of the emulator, independent of the HTTP server that feeds it.

route -> parse -> validate -> throttle -> fault -> idempotency -> latency -> handler -> serialize

No request, however malformed, gets a 5xx unless fault injection asked for it: every failure on
the way is answered with the modeled 4xx error of the service.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from harness.emulator import services as _services  # noqa: F401 - registers the handlers
from harness.emulator._context import (
    ApiError,
    Context,
    registered_handlers,
    registered_states,
    validation_error_code,
)
from harness.emulator._generic import GenericState, generic_handler
from harness.emulator._router import RouteError, Router, parse_credentials
from harness.emulator._settings import EmulatorSettings
from harness.emulator._state import IdempotencyCache, TokenCodec, params_digest
from harness.emulator._wire import WireError, encode_error
from harness.model import SEED_SERVICES, example_value, format_issues, load_service

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

    from harness.emulator._router import Route
    from harness.model import Operation, ServiceModel, Shape

__all__ = ["DEFAULT_ACCOUNT", "EmulatorCore", "EmulatorSettings", "Response"]

DEFAULT_ACCOUNT = "123456789012"
# Errors any AWS operation may answer although models rarely declare them.
_ALWAYS_DECLARED = frozenset(
    {
        "ValidationException",
        "InvalidRequestException",
        "SerializationException",
        "UnknownOperationException",
    }
)
Response = tuple[int, dict[str, str], bytes]


@dataclass(slots=True)
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # version and variant bits of a UUID
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, variant RFC 4122
_id_bits = random.Random().getrandbits  # seeded from os.urandom once; apart from the seeded rng


def _fast_uuid4() -> str:
    """A random version 4 UUID as text, ~3x cheaper than ``str(uuid.uuid4())``.

    uuid4() reads os.urandom (a system call) and builds a UUID object: ~2 µs, more under load,
    once or twice per create request. Resource ids need to be unique and random-looking, not
    unpredictable, so the Mersenne Twister (seeded from os.urandom) will do.
    """
    text = f"{_id_bits(128) & _UUID_CLEAR | _UUID_SET:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class _Context(Context):
    """The handlers' context, with :func:`_fast_uuid4` for :meth:`Context.new_id`."""

    __slots__ = ()

    new_id = staticmethod(_fast_uuid4)


@dataclass(slots=True)
class _Delayed:
    """A request that passed the checks and waits for its injected latency before its handler."""

    delay: float
    route: Route
    account: str
    region: str
    params: dict[str, Any]
    token_key: tuple[str, str, str, str] | None
    now: float


@dataclass(slots=True)
class _OpStats:
    requests: int = 0
    throttles: int = 0
    faults: int = 0
    replays: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class EmulatorCore:
    """Answers requests for the seed services from the model, with state per account and region."""

    def __init__(
        self, settings: EmulatorSettings | None = None, services: tuple[str, ...] = SEED_SERVICES
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self.models: dict[str, ServiceModel] = {name: load_service(name) for name in services}
        self.router = Router(self.models.values())
        self._rng = random.Random(self.settings.seed)
        self._handlers = registered_handlers()
        self._state_types = registered_states()
        self.tokens = TokenCodec(os.urandom(16))
        self.started = time.monotonic()
        # Request ids: UUID-shaped (version 4, variant 1) random prefix + a per-process counter.
        digits = os.urandom(16).hex()
        self._id_prefix = f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-"
        self._requests = 0
        self.conformance_failures: list[str] = []
        #: bumped by resets, restores and config changes (see :attr:`revision`)
        self.generation = 0
        self.reset()

    # ------------------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every resource, token, bucket and counter."""
        self._states: dict[tuple[str, str, str], Any] = {}
        self.idempotency = IdempotencyCache(self.settings.idempotency_ttl)
        self._buckets: dict[tuple[str, str, str, str], _Bucket] = {}
        self._stats: defaultdict[str, _OpStats] = defaultdict(_OpStats)
        self.conformance_failures.clear()
        self.generation += 1

    @property
    def revision(self) -> tuple[int, int]:
        """A value that changes whenever the state may have changed (to save only then)."""
        return self._requests, self.generation

    def configure(self, changes: Mapping[str, Any]) -> EmulatorSettings:
        """Apply ``changes`` to the running settings and return the new settings."""
        self.settings = self.settings.updated(changes)
        self.generation += 1
        self.idempotency.ttl = self.settings.idempotency_ttl
        self._buckets.clear()
        return self.settings

    def state(self, account: str, region: str, service: str) -> Any:
        """The state of ``service`` for one account and region (created on first use)."""
        key = (account, region, service)
        found = self._states.get(key)
        if found is None:
            factory: Callable[[], Any] = self._state_types.get(service, GenericState)
            found = self._states[key] = factory()
        return found

    def stats(self) -> dict[str, Any]:
        """Requests, errors, throttles and faults per operation; resources per type."""
        resources: dict[str, Counter[str]] = defaultdict(Counter)
        for (_, _, service), state in self._states.items():
            resources[service].update(state.counts())
        return {
            "uptime_s": round(time.monotonic() - self.started, 3),
            "requests": sum(s.requests for s in self._stats.values()),
            "operations": {
                key: {
                    "requests": s.requests,
                    "errors": dict(s.errors),
                    "throttles": s.throttles,
                    "faults": s.faults,
                    "replays": s.replays,
                }
                for key, s in sorted(self._stats.items())
            },
            "resources": {svc: dict(c) for svc, c in sorted(resources.items())},
            "idempotency_tokens": len(self.idempotency),
            "settings": self.settings.to_json(),
        }

    # ---------------------------------------------------------------------------- requests
    async def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any],
        getall: Callable[[str], list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        """Answer one request (never raises; every failure becomes an AWS-style error)."""
        answer = self.respond(method, path, query, getall, headers, body)
        if isinstance(answer, tuple):
            return answer
        return await answer

    def respond(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any],
        getall: Callable[[str], list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response | Coroutine[Any, Any, Response]:
        """:meth:`handle` without a coroutine unless latency is injected.

        The answer is ready at once unless ``latency_ms`` asks for a delay; then it is a
        coroutine to await (in a task: it sleeps with anyio). The HTTP server calls this to
        avoid a task and a coroutine per request, which cost more than the rest of the pipeline.
        """
        request_id = self._request_id()
        credentials = parse_credentials(headers.get("Authorization"))
        account, region = DEFAULT_ACCOUNT, "us-east-1"
        if credentials is not None:
            region = credentials.region or region
            if len(credentials.access_key) == 12 and credentials.access_key.isdigit():
                account = credentials.access_key
        try:
            route = self.router.resolve(method, path, headers, credentials)
        except RouteError as exc:
            response = self._unknown_operation(exc)
        else:
            answer = self._dispatch(route, account, region, query, getall, headers, body)
            if not isinstance(answer, tuple):
                return self._delayed(answer, request_id)
            response = answer
        response[1]["x-amzn-RequestId"] = request_id
        return response

    def _request_id(self) -> str:
        # UUID-shaped like AWS's, unique per process: a random prefix and a counter. uuid4()
        # costs ~1.9 µs per call; this ~0.2 µs.
        self._requests += 1
        return f"{self._id_prefix}{self._requests:012x}"

    def _unknown_operation(self, exc: RouteError) -> Response:
        code = "UnknownOperationException"
        if exc.service is not None and exc.service.protocol == "json":
            return encode_error(exc.service, code, exc.message, 400)
        headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
        return 404, headers, orjson.dumps({"message": exc.message})

    def _error(
        self,
        model: ServiceModel,
        op: Operation,
        code: str,
        message: str,
        status: int | None = None,
        fields: Mapping[str, Any] | None = None,
        resource: tuple[str, str] = ("", ""),
    ) -> Response:
        ref = op.error(code) or model.errors.get(code)
        if status is None:
            status = ref.status if ref is not None else 400
        self._stats[f"{model.name}.{op.name}"].errors[code] += 1
        if ref is not None:
            # Every error must conform to its own shape: fill required members the handler
            # did not give (Greengrass's resourceId/resourceType) and keep the message within
            # the model's length (a long list of validation issues can exceed it).
            fields = self._complete_fields(ref.shape, dict(fields or {}), resource)
            for name, member in ref.shape.members.items():
                limit = member.shape.max
                if name.lower() == "message" and limit is not None and len(message) > limit:
                    message = message[: int(limit) - 3] + "..."
        return encode_error(model, code, message, status, fields)

    def _dispatch(
        self,
        route: Route,
        account: str,
        region: str,
        query: Mapping[str, Any],
        getall: Callable[[str], list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response | _Delayed:
        model, op = route.service, route.operation
        stats = self._stats[route.codec.stats_key]
        stats.requests += 1
        settings = self.settings
        try:
            params = route.codec.parse(route.labels, query, getall, headers, body)
        except WireError as exc:
            return self._error(model, op, "SerializationException", str(exc), 400)
        issues = op.validate(params)
        if issues:
            # Unknown members are ignored, as AWS services do with fields they do not know.
            issues = [i for i in issues if i.constraint != "unknown"]
            if issues:
                code = validation_error_code(model, op)
                return self._error(model, op, code, format_issues(issues))
        # The emulator's clocks (throttle buckets, idempotency expiry) read time.monotonic(),
        # not anyio.current_time(): this runs outside any task on the HTTP server's fast path,
        # where anyio cannot tell the event loop, and only when a bucket or a token needs it.
        # Under asyncio both are the same clock.
        now = 0.0
        if settings.throttle == "aws":
            now = time.monotonic()
            wait = self._bucket(account, region, model.name, op, now).take(now)
            if wait > 0:
                stats.throttles += 1
                return self._throttled(model, op, wait)
        if settings.fault_rate and self._rng.random() < settings.fault_rate:
            stats.faults += 1
            return self._fault(model, op)
        token_key: tuple[str, str, str, str] | None = None
        if op.idempotency_members:
            token = params.get(op.idempotency_members[0])
            if isinstance(token, str) and token:
                now = now or time.monotonic()
                token_key = (account, region, route.codec.stats_key, token)
                digest = params_digest(params, skip=op.idempotency_members)
                entry = self.idempotency.get(token_key, now)
                if entry is not None:
                    if entry.digest != digest:
                        return self._error(
                            model,
                            op,
                            self._conflict_code(model, op),
                            f"The client token {token!r} was already used with other parameters",
                            resource=(token, "clientToken"),
                        )
                    if entry.response is None:
                        code = (
                            "RequestAlreadyInProgressException"
                            if op.error("RequestAlreadyInProgressException")
                            else self._conflict_code(model, op)
                        )
                        return self._error(
                            model,
                            op,
                            code,
                            f"A request with client token {token!r} is still in progress",
                        )
                    stats.replays += 1
                    status, hdrs, data = entry.response
                    return status, dict(hdrs), data
                self.idempotency.begin(token_key, digest, now)
        lo, hi = settings.latency_ms
        if hi > 0:
            delay = (lo + (hi - lo) * self._rng.random()) / 1000.0
            return _Delayed(delay, route, account, region, params, token_key, now)
        return self._complete(route, account, region, params, token_key, now)

    async def _delayed(self, delayed: _Delayed, request_id: str) -> Response:
        await anyio.sleep(delayed.delay)
        d = delayed
        response = self._complete(d.route, d.account, d.region, d.params, d.token_key, d.now)
        response[1]["x-amzn-RequestId"] = request_id
        return response

    def _complete(
        self,
        route: Route,
        account: str,
        region: str,
        params: dict[str, Any],
        token_key: tuple[str, str, str, str] | None,
        now: float,
    ) -> Response:
        """Run the handler and remember its answer under the request's client token."""
        response = self._run_handler(route, account, region, params)
        if token_key is not None:
            if response[0] < 300:
                entry = self.idempotency.get(token_key, now)
                if entry is not None:
                    entry.response = (response[0], dict(response[1]), response[2])
            else:
                self.idempotency.abandon(token_key)
        return response

    def _run_handler(
        self, route: Route, account: str, region: str, params: dict[str, Any]
    ) -> Response:
        model, op = route.service, route.operation
        ctx = _Context(
            account=account,
            region=region,
            model=model,
            operation=op,
            state=self.state(account, region, model.name),
            now=time.time(),
            tokens=self.tokens,
            settings=self.settings,
        )
        fn = self._handlers.get((model.name, op.name), generic_handler)
        try:
            output = fn(ctx, params)
        except ApiError as exc:
            if self.settings.check_responses and not (
                op.error(exc.code) or exc.code in _ALWAYS_DECLARED
            ):
                self.conformance_failures.append(
                    f"{model.name}.{op.name}: answered {exc.code}, which it does not declare"
                )
            return self._error(model, op, exc.code, exc.message, exc.status, exc.fields)
        except Exception as exc:
            failure = f"{model.name}.{op.name}: handler bug: {exc!r}"
            self.conformance_failures.append(failure)
            return self._error(model, op, self._server_error_code(model, op), failure, 500)
        if self.settings.check_responses and op.output is not None:
            problems = model.validator.validate_shape(op.output, output)
            if problems:
                failure = (
                    f"{model.name}.{op.name}: response breaks its shape: {format_issues(problems)}"
                )
                self.conformance_failures.append(failure)
                return self._error(model, op, "InternalFailureException", failure, 500)
        return route.codec.serialize(output)

    @staticmethod
    def _complete_fields(
        shape: Shape, fields: dict[str, Any], resource: tuple[str, str]
    ) -> dict[str, Any]:
        """``fields`` plus a value for every required member of the error shape it lacks."""
        resource_id, resource_type = resource
        for name in shape.required:
            lowered = name.lower()
            if lowered == "message" or fields.get(name) is not None:
                continue
            member = shape.members[name].shape
            if lowered.endswith("id") and resource_id:
                fields[name] = resource_id
            elif lowered.endswith("type") and resource_type and member.type == "string":
                fields[name] = resource_type
            else:
                fields[name] = example_value(member, required_only=True)
        return fields

    @staticmethod
    def _conflict_code(model: ServiceModel, op: Operation) -> str:
        """The error a reused client token with other parameters gets: the operation's own
        conflict error, else its validation error (never an undeclared one)."""
        for code in (
            "ConflictException",
            "IdempotentParameterMismatchException",
            "IdempotentParameterMismatch",
            "ResourceAlreadyExistsException",
        ):
            if op.error(code):
                return code
        return validation_error_code(model, op)

    def _bucket(
        self, account: str, region: str, service: str, op: Operation, now: float
    ) -> _Bucket:
        key = (account, region, service, op.name)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = op.quota.tps
            capacity = max(op.quota.burst or rate, 1.0)
            bucket = self._buckets[key] = _Bucket(rate, capacity, capacity, now)
        return bucket

    def _throttled(self, model: ServiceModel, op: Operation, wait: float) -> Response:
        ref = op.error("ThrottlingException") or model.errors.get("ThrottlingException")
        fields: dict[str, Any] = {}
        if ref is not None:
            for name, member in ref.shape.members.items():
                if member.wire_name.lower() == "retry-after":
                    fields[name] = max(1, math.ceil(wait))
        status = ref.status if ref is not None else 429
        return self._error(model, op, "ThrottlingException", "Rate exceeded", status, fields)

    @staticmethod
    def _server_error_code(model: ServiceModel, op: Operation) -> str:
        """The operation's own 500 error (InternalServerException or InternalFailureException)."""
        declared = [e for e in op.errors if e.status == 500]
        if declared:
            return declared[0].name
        if "InternalServerException" in model.errors:
            return "InternalServerException"
        return "InternalFailureException"

    def _fault(self, model: ServiceModel, op: Operation) -> Response:
        code = self._server_error_code(model, op)
        return self._error(model, op, code, "Injected fault (--fault-rate)", 500)
