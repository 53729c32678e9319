"""What a service handler sees: the request context, errors to raise, pagination helpers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from harness.emulator._state import Page, Table, params_digest

if TYPE_CHECKING:
    from harness.emulator._state import TokenCodec
    from harness.model import Operation, ServiceModel

__all__ = ["ApiError", "Context", "Handler", "handler", "registered_handlers", "service_state"]

V = TypeVar("V")


class ApiError(Exception):
    """An AWS error answer: the error code (a shape name of the service), message and fields."""

    def __init__(self, code: str, message: str, status: int | None = None, **fields: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields


@dataclass(slots=True)
class Context:
    """One request as a handler sees it."""

    account: str
    region: str
    model: ServiceModel
    operation: Operation
    state: Any
    now: float
    tokens: TokenCodec
    settings: Any

    def arn(self, resource: str, service: str | None = None) -> str:
        """An ARN in this request's partition, region and account."""
        return (
            f"arn:aws:{service or self.model.signing_name}:{self.region}:{self.account}:{resource}"
        )

    @staticmethod
    def new_id() -> str:
        """A fresh resource id (a UUID, as most of these services use)."""
        return str(uuid.uuid4())

    def fail(self, code: str, message: str, **fields: Any) -> NoReturn:
        """Answer with the modeled error ``code``."""
        raise ApiError(code, message, **fields)

    def id_for_arn(self, arn: str, prefix: str, index: Mapping[str, str], kind: str) -> str | None:
        """The id of the resource an ARN names, for operations that take any ARN (tagging).

        :param prefix: the ARN prefix of this resource type in this account and region
        :param index: ARN -> id of the resources of that type
        :returns: ``None`` when the ARN is not of this type (the caller answers generically)
        :raises ApiError: ResourceNotFoundException when it is of this type but names nothing
        """
        if not arn.startswith(prefix):
            return None
        found = index.get(arn)
        if found is None:
            self.fail(
                "ResourceNotFoundException",
                f"{kind} {arn!r} does not exist",
                ResourceId=arn,
                ResourceType=kind,
            )
        return found

    def invalid(self, message: str) -> NoReturn:
        """Answer with the operation's validation error."""
        raise ApiError(validation_error_code(self.model, self.operation), message)

    def page(
        self,
        table: Table[Any, V],
        params: dict[str, Any],
        keep: Callable[[V], bool] | None = None,
        default_size: int = 50,
    ) -> tuple[list[V], str | None]:
        """One page of ``table`` for this list request, with the token for the next.

        The page size comes from the paginator's limit member (bounded by its modeled maximum,
        which the validator has already enforced); the token is bound to the other parameters.

        :raises ApiError: the validation error, for a token that is not one of ours for this
            request
        """
        paginator = self.operation.paginator
        limit_key = paginator.limit_key if paginator else None
        token_key = paginator.input_token[0] if paginator else None
        size = params.get(limit_key) if limit_key else None
        if not isinstance(size, int) or size <= 0:
            size = default_size
        binding = params_digest(params, skip=(limit_key or "", token_key or ""))
        start = 0
        token = params.get(token_key) if token_key else None
        if token:
            position = self.tokens.decode(token, binding)
            if position is None:
                self.invalid(f"The pagination token {token[:64]!r} is invalid for this request")
            start = position
        result: Page[V] = table.page(start, size, keep)
        next_token = (
            self.tokens.encode(result.next_position, binding)
            if result.next_position is not None
            else None
        )
        return result.items, next_token


def validation_error_code(model: ServiceModel, operation: Operation) -> str:
    """The error this operation answers a broken constraint with.

    IoT's own is InvalidRequestException and the others' ValidationException; when the operation
    declares only one of the two (IoT's package catalog declares ValidationException), that one.
    """
    declared = {e.name for e in operation.errors}
    preferred = "InvalidRequestException" if model.name == "iot" else "ValidationException"
    other = (
        "ValidationException"
        if preferred == "InvalidRequestException"
        else "InvalidRequestException"
    )
    if preferred in declared or other not in declared:
        return preferred
    return other


Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]
_HANDLERS: dict[tuple[str, str], Handler] = {}
_STATES: dict[str, Callable[[], Any]] = {}


def handler(service: str, operation: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the behaviour of ``service``'s ``operation``."""

    def register(fn: Handler) -> Handler:
        _HANDLERS[(service, operation)] = fn
        return fn

    return register


def service_state(service: str) -> Callable[[type[V]], type[V]]:
    """Register a class as the per-(account, region) state of ``service``.

    The class should subclass :class:`harness.emulator._generic.GenericState`, so that the
    service's operations answered generically keep their resources as well.
    """

    def register(cls: type[V]) -> type[V]:
        _STATES[service] = cls
        return cls

    return register


def registered_handlers() -> dict[tuple[str, str], Handler]:
    """Every service-specific handler (the rest are answered generically)."""
    return dict(_HANDLERS)


def registered_states() -> dict[str, Callable[[], Any]]:
    """The state factory of every service with specific behaviour."""
    return dict(_STATES)
