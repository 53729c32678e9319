"""Before the first call: the SDK session a transport reads its settings from, and whether an
endpoint answers at all.

A run that cannot reach its endpoint would otherwise retry every item until its retries are
spent (half an hour for a large job); one TCP connect per endpoint, with a short timeout, tells
the same in seconds.
"""

from __future__ import annotations

import errno
import os
import socket
from urllib.parse import urlsplit

import anyio
from aiobotocore.session import AioSession
from botocore.httpsession import ProxyConfiguration
from botocore.utils import get_environ_proxies

__all__ = ["PROBE_TIMEOUT", "probe_endpoint", "proxy_for", "sdk_session"]

#: Seconds a TCP connect to an endpoint may take before the endpoint counts as unreachable.
PROBE_TIMEOUT = 5.0

_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "connection timed out",
}


def sdk_session(profile: str | None, credentials: tuple[str, str] | None) -> AioSession:
    """The aiobotocore session of a transport.

    Explicit ``credentials`` replace the credential chain, so the profile named by
    ``AWS_PROFILE`` is then not read at all: a profile meant for something else (or misspelt)
    must not break a run against an emulator, which needs no real credentials.
    """
    if credentials is not None and profile is None:
        # session_vars maps botocore's "profile" setting to no environment variable.
        return AioSession(session_vars={"profile": (None, None, None, None)})
    return AioSession(profile=profile)


def proxy_for(url: str) -> str | None:
    """The proxy botocore would send requests for ``url`` through (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``NO_PROXY``: botocore reads proxies from the environment), or ``None``."""
    proxy: str | None = ProxyConfiguration(proxies=get_environ_proxies(url)).proxy_url_for(url)
    return proxy


def _address(url: str) -> tuple[str, int]:
    # A proxy, when the SDK would use one for this URL, is what the connection goes to.
    proxy = proxy_for(url)
    parts = urlsplit(proxy or url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name"
    # anyio raises "All connection attempts failed" from the last attempt's error.
    for error in (exc, exc.__cause__, *getattr(exc, "exceptions", ())):
        if isinstance(error, OSError) and error.errno in _REASONS:
            return _REASONS[error.errno]
    return os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)


async def probe_endpoint(url: str, seconds: float = PROBE_TIMEOUT) -> str | None:
    """Open (and close) a TCP connection to the host and port of ``url`` (or of its proxy).

    :returns: ``None`` when the connection opened, else why not, in a few words
        (``"connection refused"``, ``"no answer within 5 s"``, ``"cannot resolve the host name"``)
    """
    host, port = _address(url)
    if not host:
        return "the URL names no host"
    try:
        with anyio.fail_after(seconds):
            stream = await anyio.connect_tcp(host, port)
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except OSError as exc:
        return _reason(exc)
    await stream.aclose()
    return None
