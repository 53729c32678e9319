"""The aiobotocore transport: real SDK clients, one per (service, region), retries off."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from harness.transport._probe import sdk_session
from harness.transport._types import Call, Reply

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["AioBotocoreTransport"]

# The raw body of the current call, when the transport keeps it (raw=True). A context variable,
# not an attribute: botocore emits its events inside the task that makes the call, so concurrent
# calls on one client each see their own slot.
_RAW_BODY: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar(
    "harness_raw_body", default=None
)


def _keep_body(response_dict: dict[str, Any], **_: Any) -> None:
    slot = _RAW_BODY.get()
    if slot is not None:
        body = response_dict.get("body")
        slot.append(body if isinstance(body, bytes) else b"")


def _retry_after(response: dict[str, Any], headers: dict[str, str]) -> float | None:
    value = response.get("retryAfterSeconds") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class AioBotocoreTransport:
    """Calls through aiobotocore clients with botocore's retries and validation turned off.

    botocore's retries are off (``total_max_attempts=1``) because retries belong to the engine,
    which shares one token bucket per operation across every task; parameter validation is off
    because the engine validates every item with the full validator before sending, and the
    fuzzers must be able to send invalid requests.

    :param endpoint_url: an emulator or other endpoint; ``None`` for AWS's own endpoints
    :param region: default region (``None``: the standard chain, e.g. ``AWS_DEFAULT_REGION``)
    :param profile: a named profile from the shared config files
    :param credentials: ``(access key, secret key)`` instead of the default chain
    :param max_connections: connection pool size per client (set it to the concurrency)
    :param raw: keep each response's raw body in :attr:`Reply.body` (the contract checks read
        the error type from it; the engine has no use for it)
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        credentials: tuple[str, str] | None = None,
        max_connections: int = 64,
        read_timeout: float = 60.0,
        raw: bool = False,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.raw = raw
        self._session = sdk_session(profile, credentials)
        self.region: str = region or self._session.get_config_variable("region") or "us-east-1"
        self._credentials = credentials
        self.identity = credentials[0] if credentials else (profile or "default")
        self._config = AioConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            parameter_validation=False,
            read_timeout=read_timeout,
            connect_timeout=10,
        )
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = asyncio.Lock()

    async def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        client = self._clients.get(key)
        if client is None:
            async with self._lock:
                client = self._clients.get(key)
                if client is None:
                    kwargs: dict[str, Any] = {
                        "region_name": region,
                        "endpoint_url": self.endpoint_url,
                        "config": self._config,
                    }
                    if self._credentials:
                        kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = (
                            self._credentials
                        )
                    created = await self._stack.enter_async_context(
                        self._session.create_client(service, **kwargs)
                    )
                    if self.raw:
                        created.meta.events.register("before-parse", _keep_body)
                    self._clients[key] = client = created
        return client

    async def endpoint(self, service: str, region: str | None = None) -> str:
        """The URL calls of ``service`` go to, as botocore resolves it (``endpoint_url``, else
        ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``, the config file, AWS's own).

        :raises botocore.exceptions.BotoCoreError: when the configuration cannot work (an
            unknown profile, an invalid config file)
        """
        client = await self._client(service, region or self.region)
        return str(client.meta.endpoint_url)

    async def check_credentials(self) -> bool:
        """Resolve the credentials calls are signed with; ``False`` when none are found.

        :raises botocore.exceptions.BotoCoreError: when they are configured but cannot be
            loaded (partial keys, a failing credential process, an expired SSO token...)
        """
        if self._credentials:
            return True
        found = await self._session.get_credentials()
        if found is None:
            return False
        await found.get_frozen_credentials()  # refreshable ones load (or fail) here
        return True

    async def send(self, call: Call) -> Reply:
        """Make one attempt of ``call``; AWS errors and connection failures become replies."""
        client = await self._client(call.service, call.region or self.region)
        method = getattr(client, xform_name(call.operation))
        slot: list[bytes] = []
        reset = _RAW_BODY.set(slot) if self.raw else None
        try:
            output = await method(**call.params)
        except ClientError as exc:
            response: dict[str, Any] = exc.response
            meta = response.get("ResponseMetadata", {})
            headers = meta.get("HTTPHeaders", {})
            error = response.get("Error", {})
            return Reply(
                status=int(meta.get("HTTPStatusCode", 0)),
                error_code=error.get("Code") or None,
                error_message=error.get("Message", ""),
                retry_after=_retry_after(response, headers),
                request_id=meta.get("RequestId"),
                headers=headers,
                body=slot[-1] if slot else None,
            )
        except (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError) as exc:
            return Reply(status=0, error_code=type(exc).__name__, error_message=str(exc))
        finally:
            if reset is not None:
                _RAW_BODY.reset(reset)
        meta = output.pop("ResponseMetadata", {})
        return Reply(
            status=int(meta.get("HTTPStatusCode", 200)),
            output=output,
            request_id=meta.get("RequestId"),
            headers=meta.get("HTTPHeaders", {}),
            body=slot[-1] if slot else None,
        )

    async def aclose(self) -> None:
        """Close every client."""
        await self._stack.aclose()
        self._clients.clear()

    async def __aenter__(self) -> AioBotocoreTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
