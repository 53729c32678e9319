"""The fast transport: botocore's requests and parsing, without botocore's per-call machinery.

aiobotocore spends ~740 µs of CPU per call, about 70% of it in botocore layers that do the same
work on every call: endpoint rules, User-Agent building (twice), hook dispatch, retry checks, the
SigV4 key chain (``shared/reference/baselines.md``). :class:`FastTransport` does that work once
per operation (:mod:`harness.transport._fast_plan`), caches the SigV4 signing key per day
(:mod:`harness.transport._fast_sigv4`), and per call runs only botocore's serializer, its
idempotency-token hook, a signature, one aiohttp request on a shared keep-alive session, and
botocore's parser. ``tests/transport/test_fast_equivalence.py`` proves the requests byte-identical
to aiobotocore's and the replies equal.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore._constants import DEFAULT_KEEPALIVE_TIMEOUT
from aiobotocore.config import AioConfig
from botocore import xform_name
from botocore.awsrequest import HeadersDict, prepare_request_dict
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.handlers import add_recursion_detection_header, generate_idempotent_uuid
from botocore.httpsession import create_urllib3_context, get_cert_path
from yarl import URL

from harness.errors import InvalidArgument, UnknownOperation
from harness.transport._aiobotocore import _retry_after
from harness.transport._fast_plan import OperationPlan, plan_operation
from harness.transport._fast_sigv4 import SigV4Signer
from harness.transport._probe import proxy_for, sdk_session
from harness.transport._types import Call, Reply

if TYPE_CHECKING:
    import ssl
    from types import TracebackType

__all__ = ["FastTransport"]

_NO_LENGTH_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _as_botocore_error(exc: Exception, url: str) -> Exception:
    """The exception aiobotocore's AIOHTTPSession.send raises for ``exc`` (same order of checks).

    Mirrored, not approximated: status-0 replies carry the exception's name and text, and both
    transports must give the engine the same ones.
    """
    error: Exception
    if isinstance(exc, aiohttp.ClientSSLError):
        error = SSLError(endpoint_url=url, error=exc)
    elif isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.http_exceptions.BadStatusLine,
    ):
        error = ConnectionClosedError(error=exc, request=None, endpoint_url=url)
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        timeout = (
            ConnectTimeoutError if str(exc).lower().startswith("connect") else ReadTimeoutError
        )
        error = timeout(endpoint_url=url, error=exc)
    elif isinstance(
        exc, aiohttp.ClientConnectorError | aiohttp.ClientConnectionError | socket.gaierror
    ):
        error = EndpointConnectionError(endpoint_url=url, error=exc)
    elif isinstance(exc, TimeoutError):
        error = ReadTimeoutError(endpoint_url=url, error=exc)
    else:
        error = HTTPClientError(error=exc)
    return error


class FastTransport:
    """Sends calls with botocore's serializer, parser, endpoint and SigV4 rules at a fraction of
    aiobotocore's CPU per call; same constructor and replies as :class:`AioBotocoreTransport`.

    One aiobotocore client per (service, region) is built on first use, only to read what botocore
    would do (endpoint, signing name and region, User-Agent); requests go through one shared
    aiohttp session with ``max_connections`` keep-alive connections. Operations that need more of
    botocore than that (streaming, checksums, service customizations, ...) are refused with
    :class:`~harness.errors.InvalidArgument` on their first call. Proxies are not supported.

    :param endpoint_url: an emulator or other endpoint; ``None`` for AWS's own endpoints
    :param region: default region (``None``: the standard chain, e.g. ``AWS_DEFAULT_REGION``)
    :param profile: a named profile from the shared config files
    :param credentials: ``(access key, secret key)`` instead of the default chain
    :param max_connections: size of the shared connection pool (set it to the concurrency)
    :param read_timeout: seconds to wait for data on a socket
    :param raw: keep each response's raw body in :attr:`Reply.body`
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
        self._max_connections = max_connections
        self._read_timeout = read_timeout
        # The client config AioBotocoreTransport uses: it shapes the endpoint and User-Agent.
        self._config = AioConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            parameter_validation=False,
            read_timeout=read_timeout,
            connect_timeout=10,
        )
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}
        self._plans: dict[tuple[str, str, str], OperationPlan] = {}
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._signer = SigV4Signer()
        # Static credentials are frozen once; refreshable ones are asked on every call (a cheap
        # expiry check that refreshes ahead of expiry, as aiobotocore's signer does).
        self._frozen: ReadOnlyCredentials | None = None
        self._refreshable: Any = None
        self._credentials_loaded = False
        if credentials is not None:
            self._frozen = ReadOnlyCredentials(credentials[0], credentials[1], None)
            self._credentials_loaded = True

    async def _plan(self, service: str, region: str, operation: str) -> OperationPlan:
        async with self._lock:
            key = (service, region, operation)
            plan = self._plans.get(key)
            if plan is not None:
                return plan
            client = self._clients.get((service, region))
            if client is None:
                client = await self._client(service, region)
            model = client.meta.service_model
            names = {xform_name(n): n for n in model.operation_names}
            name = operation if operation in model.operation_names else names.get(operation)
            if name is None:
                raise UnknownOperation(service, operation)
            plan = await plan_operation(client, model.operation_model(name))
            self._plans[key] = plan
            return plan

    async def _client(self, service: str, region: str) -> Any:
        kwargs: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": self.endpoint_url,
            "config": self._config,
        }
        if self._credentials:
            kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = self._credentials
        client = await self._stack.enter_async_context(
            self._session.create_client(service, **kwargs)
        )
        if proxy_for(client.meta.endpoint_url):
            raise InvalidArgument(
                f"FastTransport does not support proxies ({client.meta.endpoint_url} would go "
                "through one); use the aiobotocore transport"
            )
        await self.check_credentials()
        self._clients[(service, region)] = client
        return client

    async def endpoint(self, service: str, region: str | None = None) -> str:
        """The URL calls of ``service`` go to, as botocore resolves it (``endpoint_url``, else
        ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``, the config file, AWS's own).

        :raises botocore.exceptions.BotoCoreError: when the configuration cannot work (an
            unknown profile, an invalid config file)
        """
        region = region or self.region
        async with self._lock:
            client = self._clients.get((service, region)) or await self._client(service, region)
        return str(client.meta.endpoint_url)

    async def check_credentials(self) -> bool:
        """Resolve the credentials calls are signed with; ``False`` when none are found.

        :raises botocore.exceptions.BotoCoreError: when they are configured but cannot be
            loaded (partial keys, a failing credential process, an expired SSO token...)
        """
        if not self._credentials_loaded:
            found = await self._session.get_credentials()
            if found is not None and hasattr(found, "refresh_needed"):
                self._refreshable = found
            elif found is not None:
                self._frozen = await found.get_frozen_credentials()
            self._credentials_loaded = True
        return await self._frozen_credentials() is not None

    def _ssl_context(self) -> ssl.SSLContext:
        # aiobotocore's context for the default verify setting: botocore's CA bundle rules.
        verify = self._session.get_config_variable("ca_bundle") or True
        context: ssl.SSLContext = create_urllib3_context()
        context.check_hostname = True
        ca_certs = get_cert_path(verify)
        if ca_certs:
            context.load_verify_locations(ca_certs, None, None)
        return context

    async def _open(self) -> aiohttp.ClientSession:
        async with self._lock:
            if self._http is None:
                secure = self.endpoint_url is None or self.endpoint_url.startswith("https")
                # Loading the CA bundle is blocking file I/O: off the loop, and only for TLS.
                context = await asyncio.to_thread(self._ssl_context) if secure else True
                connector = aiohttp.TCPConnector(
                    limit=self._max_connections,
                    keepalive_timeout=DEFAULT_KEEPALIVE_TIMEOUT,
                    ssl=context,
                )
                self._http = aiohttp.ClientSession(
                    connector=connector,
                    timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=self._read_timeout),
                    # As aiobotocore: botocore sets Content-Type itself, and bodies are read raw.
                    skip_auto_headers={"CONTENT-TYPE"},
                    auto_decompress=False,
                )
            return self._http

    async def _frozen_credentials(self) -> ReadOnlyCredentials | None:
        if self._refreshable is not None:
            frozen: ReadOnlyCredentials = await self._refreshable.get_frozen_credentials()
            return frozen
        return self._frozen

    async def send(self, call: Call) -> Reply:
        """Make one attempt of ``call``; AWS errors and connection failures become replies.

        :raises InvalidArgument: for an operation FastTransport does not support (first call)
        """
        region = call.region or self.region
        plan = self._plans.get((call.service, region, call.operation))
        if plan is None:
            plan = await self._plan(call.service, region, call.operation)
        params = call.params
        if plan.has_tokens:
            # botocore's own hook, on a copy: aiobotocore fills the tokens into its kwargs copy.
            params = dict(params)
            generate_idempotent_uuid(params=params, model=plan.model)
        request: dict[str, Any] = plan.serializer.serialize_to_request(params, plan.model)
        if not plan.host_prefix:
            request.pop("host_prefix", None)
        headers: dict[str, str] = request["headers"]
        if plan.headers:
            headers.update(plan.headers)
        prepare_request_dict(request, plan.endpoint_url, user_agent=plan.user_agent)
        add_recursion_detection_header(request)
        body = request["body"]
        if not isinstance(body, bytes):
            raise InvalidArgument(
                f"FastTransport does not support {call.service} {plan.model.name}: "
                "a non-bytes request body"
            )
        method: str = request["method"]
        url: str = request["url"]
        try:
            credentials = await self._frozen_credentials()
            if credentials is None:
                raise NoCredentialsError()
        except BotoCoreError as exc:
            return Reply(status=0, error_code=type(exc).__name__, error_message=str(exc))
        self._signer.sign(
            method,
            url,
            headers,
            body,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            token=credentials.token,
            region=plan.signing_region,
            service=plan.signing_name,
        )
        # What botocore adds after signing: retry headers, then Content-Length (not for GETs),
        # then aiobotocore's Accept-Encoding (https://github.com/boto/botocore/issues/1255).
        headers["amz-sdk-invocation-id"] = str(uuid.uuid4())
        headers["amz-sdk-request"] = "attempt=1"
        if method not in _NO_LENGTH_METHODS:
            headers["Content-Length"] = str(len(body))
        headers["Accept-Encoding"] = "identity"
        http = self._http or await self._open()
        try:
            async with http.request(
                method, URL(url, encoded=True), headers=headers, data=body or None
            ) as response:
                payload = await response.read()
                status = response.status
                # aiobotocore's header dict: lower-case names, the last repeated header wins.
                # Decoded here, as aiobotocore does, so that undecodable bytes are an HTTP error.
                received = {
                    k.decode("utf-8").lower(): v.decode("utf-8") for k, v in response.raw_headers
                }
        except Exception as exc:  # mapped like aiobotocore; cancellation is not an Exception
            error = _as_botocore_error(exc, url)
            return Reply(status=0, error_code=type(error).__name__, error_message=str(error))
        return self._reply(plan, status, received, payload)

    def _reply(
        self,
        plan: OperationPlan,
        status: int,
        headers: dict[str, str],
        payload: bytes,
    ) -> Reply:
        # Wrapped case-insensitively as botocore's AWSResponse does: the parser looks up
        # header members by their modeled names ("Retry-After").
        response = {
            "status_code": status,
            "headers": HeadersDict(headers),
            "body": payload,
            "context": {"operation_name": plan.model.name},
        }
        parsed: dict[str, Any] = plan.parser.parse(response, plan.model.output_shape)
        body = payload if self.raw else None
        if status >= 300:
            # botocore's Endpoint._add_modeled_error_fields: the error shape's own members
            # (e.g. retryAfterSeconds from the Retry-After header).
            code = parsed.get("Error", {}).get("Code")
            shape = None if code is None else plan.model.service_model.shape_for_error_code(code)
            if shape is not None:
                parsed.update(plan.parser.parse(response, shape))
            meta = parsed.get("ResponseMetadata", {})
            error = parsed.get("Error", {})
            return Reply(
                status=int(meta.get("HTTPStatusCode", 0)),
                error_code=error.get("Code") or None,
                error_message=error.get("Message", ""),
                retry_after=_retry_after(parsed, meta.get("HTTPHeaders", {})),
                request_id=meta.get("RequestId"),
                headers=meta.get("HTTPHeaders", {}),
                body=body,
            )
        meta = parsed.pop("ResponseMetadata", {})
        return Reply(
            status=int(meta.get("HTTPStatusCode", 200)),
            output=parsed,
            request_id=meta.get("RequestId"),
            headers=meta.get("HTTPHeaders", {}),
            body=body,
        )

    async def aclose(self) -> None:
        """Close the HTTP session and the clients that were read for endpoints."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self._stack.aclose()
        self._clients.clear()
        self._plans.clear()

    async def __aenter__(self) -> FastTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
