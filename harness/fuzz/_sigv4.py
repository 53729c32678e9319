"""SigV4 signing for requests that Schemathesis (or any ``requests`` caller) sends.

We sign in a :class:`requests.auth.AuthBase`, registered with
``schema.auth.set_from_requests(...)``: it runs on the final prepared request, after serialisation,
so it signs the exact body bytes. (A Schemathesis ``@auth`` provider runs before serialisation and
cannot, see schemathesis#2329.)

Before signing we make the request what AWS will canonicalise:

* json-protocol pseudo-paths (``/AwsProton20200720.CreateEnvironment``, see
  :func:`~harness.fuzz.openapi_document`) become ``POST /`` with ``X-Amz-Target`` and the
  protocol's content type;
* the query string is re-encoded per RFC 3986 (``%20``, not ``+``; ``~`` unescaped): the service
  decodes it and re-encodes it that way to check the signature, and botocore signs a URL's query
  string as it is;
* ``Connection``, ``Accept-Encoding`` and ``User-Agent`` are not signed: proxies and HTTP stacks
  rewrite them.

Header values must be ASCII: ``http.client`` sends latin-1 while SigV4 signs UTF-8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import requests
from botocore.auth import SigV4Auth as _BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harness.errors import InvalidArgument
from harness.model import load_service

if TYPE_CHECKING:
    from harness.model import ServiceModel

__all__ = ["SigV4Auth", "rfc3986_query"]

#: Headers we never sign: intermediaries may add, drop or rewrite them.
UNSIGNED_HEADERS = frozenset({"connection", "accept-encoding", "user-agent"})
# Headers the signature sets; a stale value (Schemathesis generates an Authorization header for
# the declared security scheme) must not be signed or sent.
_SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")

#: What ``credentials=`` accepts: botocore credentials or ``(access key, secret key[, token])``.
CredentialsLike: TypeAlias = "Credentials | tuple[str, str] | tuple[str, str, str]"


def rfc3986_query(query: str) -> str:
    """A query string re-encoded the way SigV4 canonicalises it (``a%20b``, not ``a+b``).

    Keys without ``=`` keep an empty value; the order of the pairs is kept.
    """
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


class SigV4Auth(requests.auth.AuthBase):
    """Sign each request with SigV4 for one service and region.

    >>> auth = SigV4Auth.for_service("greengrassv2", "eu-west-1", ("AKID", "SECRET"))
    >>> requests.get(url, auth=auth)  # doctest: +SKIP

    :param signing_name: the SigV4 service name (``greengrass`` for Greengrass V2)
    :param region: the region of the credential scope
    :param credentials: ``(access key, secret key[, session token])`` or botocore credentials;
        ``None`` resolves botocore's standard chain on first use (an emulator accepts any)
    :param target_prefix: the json-protocol target prefix whose pseudo-paths we rewrite
    :param json_version: the json protocol version (``application/x-amz-json-<version>``)
    """

    def __init__(
        self,
        signing_name: str,
        region: str = "us-east-1",
        credentials: CredentialsLike | None = None,
        *,
        target_prefix: str | None = None,
        json_version: str = "1.0",
    ) -> None:
        self.signing_name = signing_name
        self.region = region
        self.target_prefix = target_prefix
        self.json_version = json_version
        self._credentials = _as_credentials(credentials) if credentials is not None else None

    @classmethod
    def for_service(
        cls,
        service: str | ServiceModel,
        region: str = "us-east-1",
        credentials: CredentialsLike | None = None,
    ) -> SigV4Auth:
        """The auth for a pinned service model: its signing name and json target prefix."""
        model = load_service(service) if isinstance(service, str) else service
        return cls(
            model.signing_name,
            region,
            credentials,
            target_prefix=model.target_prefix if model.protocol == "json" else None,
            json_version=model.json_version,
        )

    @property
    def credentials(self) -> Credentials:
        """The credentials we sign with (the standard chain's, resolved once, when none given).

        :raises InvalidArgument: when none were given and the chain finds none
        """
        if self._credentials is None:
            import botocore.session

            found = botocore.session.get_session().get_credentials()
            if found is None:
                raise InvalidArgument(
                    "no AWS credentials: pass credentials=(access key, secret key) or configure "
                    "the standard chain (environment, profile, instance role)"
                )
            self._credentials = found
        return self._credentials

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        assert r.url is not None and r.method is not None
        parts = urlsplit(r.url)
        path = parts.path
        if self.target_prefix is not None:
            head, _, last = path.rpartition("/")
            if last.startswith(f"{self.target_prefix}."):
                path = f"{head}/"
                r.method = "POST"
                r.headers["X-Amz-Target"] = last
                r.headers["Content-Type"] = f"application/x-amz-json-{self.json_version}"
        r.url = urlunsplit((parts.scheme, parts.netloc, path, rfc3986_query(parts.query), ""))
        body = r.body
        if isinstance(body, str):
            body = body.encode()
        if body is not None and not isinstance(body, bytes):
            raise InvalidArgument("SigV4Auth signs byte bodies only, not streams")
        r.body = body
        if body is not None:
            r.headers["Content-Length"] = str(len(body))
        for name in _SIGNATURE_HEADERS:
            r.headers.pop(name, None)
        signed = {k: v for k, v in r.headers.items() if k.lower() not in UNSIGNED_HEADERS}
        request = AWSRequest(method=r.method, url=r.url, data=body or b"", headers=signed)
        frozen = self.credentials.get_frozen_credentials()
        _BotocoreSigV4(frozen, self.signing_name, self.region).add_auth(request)
        for name in _SIGNATURE_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                r.headers[name] = value
        return r

    def __repr__(self) -> str:
        return f"<SigV4Auth {self.signing_name} {self.region}>"


def _as_credentials(value: Any) -> Credentials:
    if isinstance(value, Credentials):
        return value
    if isinstance(value, tuple) and len(value) in (2, 3) and all(isinstance(v, str) for v in value):
        return Credentials(*value)
    raise InvalidArgument(
        f"credentials={value!r}: expected (access key, secret key[, session token])"
    )
