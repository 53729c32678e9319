"""SigV4 header signing for :class:`~harness.transport.FastTransport`, with the key cached.

botocore's ``SigV4Auth.add_auth`` re-derives the four-HMAC key chain, rebuilds the headers through
``HTTPHeaders`` and re-splits the URL on every call: about a fifth of aiobotocore's CPU per call
(``shared/reference/baselines.md``). The signature depends only on the canonical request, the
timestamp and a key that changes once a day per (secret, region, service), so the key is derived
once and the canonical request is built straight from the headers dict.

The output is meant to be byte-identical to ``botocore.auth.SigV4Auth`` for the same request and
timestamp: the pieces that decide the canonical form (the unsigned-header list, the host rule,
path normalisation) are botocore's own, and ``tests/transport/test_fast_equivalence.py`` checks
the whole signature against botocore's for generated requests.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import lru_cache
from typing import Final
from urllib.parse import quote, urlsplit

from botocore.auth import EMPTY_SHA256_HASH, SIGNED_HEADERS_BLACKLIST, _host_from_url
from botocore.utils import normalize_url_path

__all__ = ["SigV4Signer", "clock"]

_ALGORITHM: Final = "AWS4-HMAC-SHA256"
_UNSIGNED: Final = frozenset(SIGNED_HEADERS_BLACKLIST)
# Keys are tiny, but a long run with rotating credentials must not grow the cache without end.
_MAX_KEYS: Final = 64

#: The wall clock the signer reads (seconds since the epoch). A module attribute so that tests can
#: freeze it together with botocore's ``get_current_datetime`` and compare signatures.
clock = time.time


@lru_cache(maxsize=256)
def _host(scheme: str, netloc: str) -> str:
    # botocore's own rule (lower-case, default port dropped, IPv6 bracketed); the netloc of an
    # endpoint rarely changes, so the URL parsing behind it runs once per endpoint.
    return str(_host_from_url(f"{scheme}://{netloc}"))


@lru_cache(maxsize=4096)
def _canonical_path(path: str) -> str:
    # Paths repeat (every ListThings is ``/things``), so this is usually a cache hit.
    return quote(normalize_url_path(path), safe="/~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


class SigV4Signer:
    """Adds ``X-Amz-Date``, ``X-Amz-Security-Token`` and ``Authorization`` to a request's headers.

    One signer serves every service and region of a transport; it is not thread-safe (one event
    loop uses it).
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._second = -1
        self._stamp = ""

    def timestamp(self) -> str:
        """The current ``X-Amz-Date`` value (``YYYYMMDDTHHMMSSZ``), formatted once per second."""
        now = int(clock())
        if now != self._second:
            self._stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            self._second = now
        return self._stamp

    def signing_key(self, secret_key: str, day: str, region: str, service: str) -> bytes:
        """The derived key for ``day`` (``YYYYMMDD``), ``region`` and ``service``, cached."""
        cache_key = (secret_key, day, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            key = _hmac(f"AWS4{secret_key}".encode(), day)
            for part in (region, service, "aws4_request"):
                key = _hmac(key, part)
            self._keys[cache_key] = key
        return key

    def sign(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        access_key: str,
        secret_key: str,
        token: str | None,
        region: str,
        service: str,
    ) -> None:
        """Sign the request in place, exactly as ``SigV4Auth(...).add_auth`` would.

        :param url: the full, already percent-encoded URL the request goes to
        :param headers: the request headers; names must be unique case-insensitively
        """
        stamp = self.timestamp()
        day = stamp[:8]
        # botocore drops an old signature and removes and re-adds these, so they end up after
        # the other headers.
        headers.pop("Authorization", None)
        headers.pop("X-Amz-Date", None)
        headers["X-Amz-Date"] = stamp
        if token:
            headers.pop("X-Amz-Security-Token", None)
            headers["X-Amz-Security-Token"] = token
        parts = urlsplit(url)
        signed: list[tuple[str, str]] = []
        payload_hash = None
        for name, value in headers.items():
            lname = name.lower()
            if lname == "x-amz-content-sha256":
                payload_hash = value  # botocore signs a given payload hash instead of the body
            if lname not in _UNSIGNED:
                signed.append((lname, " ".join(value.split())))
        if not any(lname == "host" for lname, _ in signed):
            signed.append(("host", _host(parts.scheme, parts.netloc)))
        signed.sort()
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
        query = ""
        if parts.query:
            pairs = sorted(pair.partition("=")[::2] for pair in parts.query.split("&"))
            query = "&".join(f"{key}={value}" for key, value in pairs)
        signed_names = ";".join(lname for lname, _ in signed)
        canonical = "\n".join(
            (
                method.upper(),
                _canonical_path(parts.path),
                query,
                "".join(f"{lname}:{value}\n" for lname, value in signed),
                signed_names,
                payload_hash,
            )
        )
        scope = f"{day}/{region}/{service}/aws4_request"
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        string_to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{digest}"
        key = self.signing_key(secret_key, day, region, service)
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"{_ALGORITHM} Credential={access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )
