"""FastTransport sends the requests aiobotocore sends and reads replies the way aiobotocore does.

Both transports talk to the same capture server on 127.0.0.1 (it records every request and answers
a canned response). With botocore's and FastTransport's clocks frozen to one instant and
``uuid.uuid4`` made deterministic (idempotency tokens and ``amz-sdk-invocation-id``), the two
requests for the same call must be byte-identical: method, path and query, every header (the
User-Agent's feature set compared as a set), the body, and so the SigV4 signature. Replies to the
same canned response (success bodies and every error shape the seed services use) must be equal
``Reply`` objects, raw body included.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import socket
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import pytest
from aiohttp import web
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from harness.emulator import EmulatorThread
from harness.errors import InvalidArgument, UnknownOperation
from harness.fuzz import valid_params
from harness.model import load_service
from harness.transport import AioBotocoreTransport, Call, FastTransport, Reply, _fast_sigv4

FIXED = dt.datetime(2026, 5, 4, 23, 59, 58)
FIXED_EPOCH = FIXED.replace(tzinfo=dt.UTC).timestamp()
CREDENTIALS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
DATE = "Mon, 04 May 2026 23:59:58 GMT"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

SEED = {
    "iot": [
        "CreateThing",
        "CreateThingGroup",
        "AddThingToThingGroup",
        "ListThings",
        "ListThingsInThingGroup",
        "CreatePackage",
        "CreatePackageVersion",
        "ListPackageVersions",
    ],
    "greengrassv2": ["CreateDeployment", "GetDeployment", "ListDeployments"],
    "iotwireless": ["CreateFuotaTask", "ListFuotaTasks"],
    "proton": ["CreateEnvironmentTemplateVersion", "ListEnvironmentTemplateVersions"],
    "iot-managed-integrations": ["CreateOtaTask", "ListOtaTasks"],
}
SEED_OPS = [(service, op) for service, ops in SEED.items() for op in ops]
ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/g"

# Hand-written params: special characters in URI labels and query values, nested maps, explicit
# and missing idempotency tokens. Validation is off in both transports, so invalid values are sent.
HAND_WRITTEN: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("iot", "CreateThing"): [
        {"thingName": "t 1/é%?#&=+", "attributePayload": {"attributes": {"k": "v w"}}},
        {"thingName": "..", "thingTypeName": "type", "billingGroupName": "b"},
    ],
    ("iot", "CreateThingGroup"): [
        {
            "thingGroupName": "g:1",
            "parentGroupName": "p",
            "thingGroupProperties": {
                "thingGroupDescription": "d\nx \u2603",
                "attributePayload": {"attributes": {"a": "b"}, "merge": True},
            },
            "tags": [{"Key": "k", "Value": "v"}],
        }
    ],
    ("iot", "AddThingToThingGroup"): [
        {"thingGroupName": "g", "thingName": "t", "overrideDynamicGroups": False},
        {},
    ],
    ("iot", "ListThings"): [
        {
            "attributeName": "a&b=c",
            "attributeValue": "x y+z/~*'",
            "maxResults": 10,
            "nextToken": "tok/+==",
            "usePrefixAttributeValue": True,
            "thingTypeName": "ü",
        },
        {},
    ],
    ("iot", "ListThingsInThingGroup"): [
        {"thingGroupName": "g/../x y", "recursive": True, "maxResults": 5, "nextToken": "%41"}
    ],
    ("iot", "CreatePackage"): [
        {"packageName": "pkg name", "description": "d", "tags": {"k": "v"}},
        {"packageName": "p", "clientToken": "explicit-token-0123456789abcdef0123456789"},
    ],
    ("iot", "CreatePackageVersion"): [
        {"packageName": "p/q", "versionName": "1.0.0+build", "attributes": {"a": "b c"}},
        {"packageName": "p", "versionName": "v", "clientToken": "t" * 40, "recipe": "{}"},
    ],
    ("iot", "ListPackageVersions"): [
        {"packageName": "p", "status": "PUBLISHED", "maxResults": 3, "nextToken": "a b"}
    ],
    ("greengrassv2", "CreateDeployment"): [
        {
            "targetArn": ARN,
            "deploymentName": "d",
            "components": {
                "com.example.Hello": {
                    "componentVersion": "1.0.0",
                    "configurationUpdate": {"merge": '{"a": 1}', "reset": ["/x"]},
                    "runWith": {"posixUser": "u:g", "systemResourceLimits": {"cpus": 0.5}},
                }
            },
            "deploymentPolicies": {"failureHandlingPolicy": "ROLLBACK"},
            "tags": {"k": "v"},
        }
    ],
    ("greengrassv2", "GetDeployment"): [{"deploymentId": "id with space/#?"}],
    ("greengrassv2", "ListDeployments"): [
        {"targetArn": ARN, "historyFilter": "ALL", "maxResults": 50, "nextToken": "n=="}
    ],
    ("iotwireless", "CreateFuotaTask"): [
        {
            "Name": "n",
            "FirmwareUpdateImage": "s3://b/k",
            "FirmwareUpdateRole": "arn:aws:iam::123456789012:role/r",
            "LoRaWAN": {"RfRegion": "EU868"},
            "Tags": [{"Key": "k", "Value": "v"}],
        }
    ],
    ("iotwireless", "ListFuotaTasks"): [{"MaxResults": 5, "NextToken": "t/+ x"}],
    ("proton", "CreateEnvironmentTemplateVersion"): [
        {"templateName": "t", "source": {"s3": {"bucket": "b", "key": "k"}}, "majorVersion": "1"}
    ],
    ("proton", "ListEnvironmentTemplateVersions"): [
        {"templateName": "t", "majorVersion": "1", "maxResults": 10, "nextToken": "x"}
    ],
    ("iot-managed-integrations", "CreateOtaTask"): [
        {
            "S3Url": "s3://b/k",
            "OtaType": "ONE_TIME",
            "Target": ["a", "b"],
            "OtaSchedulingConfig": {"StartTime": "2026-01-01T00:00:00Z"},
        }
    ],
    ("iot-managed-integrations", "ListOtaTasks"): [{"MaxResults": 5, "NextToken": "a+b"}],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- capture server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    """One request as it arrived: method, raw target, raw header list, body."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, (name, values)
        return values[0] if values else None


@dataclass
class Canned:
    """What the capture server answers."""

    status: int = 200
    body: bytes = b"{}"
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "application/json")]
    )
    delay: float = 0.0


class CaptureServer:
    """A tiny aiohttp server on 127.0.0.1 that records requests and answers :attr:`canned`."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.canned = Canned()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = tuple((k.decode(), v.decode()) for k, v in request.raw_headers)
        self.requests.append(Captured(request.method, request.raw_path, headers, body))
        canned = self.canned
        if canned.delay:
            await asyncio.sleep(canned.delay)
        # A fixed Date header: replies of the two transports are compared whole.
        return web.Response(
            status=canned.status,
            body=canned.body,
            headers=CIMultiDict([("Date", DATE), *canned.headers]),
        )

    async def __aenter__(self) -> CaptureServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    async with CaptureServer() as capture:
        yield capture


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Freeze both signing clocks and make uuid4 deterministic; returns a reset of the uuids."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FIXED)
    monkeypatch.setattr(_fast_sigv4, "clock", lambda: FIXED_EPOCH)
    counter = [0]

    def uuid4() -> uuid.UUID:
        counter[0] += 1
        return uuid.UUID(int=counter[0] * 7919, version=4)

    monkeypatch.setattr(uuid, "uuid4", uuid4)

    def reset() -> None:
        counter[0] = 0

    return reset


Pair = tuple[AioBotocoreTransport, FastTransport]


@pytest.fixture
async def pair(server: CaptureServer) -> AsyncIterator[Pair]:
    kwargs: dict[str, Any] = {
        "endpoint_url": server.url,
        "region": "us-east-1",
        "credentials": CREDENTIALS,
        "raw": True,
    }
    async with AioBotocoreTransport(**kwargs) as slow, FastTransport(**kwargs) as fast:
        yield slow, fast


async def both(
    pair: Pair, server: CaptureServer, call: Call, reset: Callable[[], None] | None = None
) -> tuple[tuple[Reply, Reply], tuple[Captured, Captured]]:
    """Send ``call`` through each transport (uuids reset before each); the replies and requests."""
    replies = []
    for transport in pair:
        if reset is not None:
            reset()
        replies.append(await transport.send(call))
    first, second = server.requests[-2:]
    return (replies[0], replies[1]), (first, second)


# -- request equivalence ------------------------------------------------------------------------


def _ua(value: str | None) -> tuple[str, ...]:
    """A User-Agent with its ``m/`` feature list as a sorted set (botocore joins a set)."""
    assert value is not None
    parts = value.split(" ")
    return tuple(
        "m/" + ",".join(sorted(p[2:].split(","))) if p.startswith("m/") else p for p in parts
    )


def _auth(value: str | None) -> dict[str, str]:
    assert value is not None and value.startswith("AWS4-HMAC-SHA256 ")
    fields = dict(p.split("=", 1) for p in value.removeprefix("AWS4-HMAC-SHA256 ").split(", "))
    assert set(fields) == {"Credential", "SignedHeaders", "Signature"}
    return fields


def assert_same_request(slow: Captured, fast: Captured) -> None:
    """The fast request is the aiobotocore request, piece by piece and then byte for byte."""
    assert fast.method == slow.method
    s_url, f_url = urlsplit(slow.target), urlsplit(fast.target)
    assert f_url.path == s_url.path
    assert Counter(parse_qsl(f_url.query, keep_blank_values=True)) == Counter(
        parse_qsl(s_url.query, keep_blank_values=True)
    )
    assert fast.target == slow.target  # same encoding and order, too
    if slow.body:
        assert json.loads(fast.body) == json.loads(slow.body)
    assert fast.body == slow.body
    for name in ("Content-Type", "X-Amz-Target", "Content-Length", "X-Amz-Date", "Host"):
        assert fast.header(name) == slow.header(name), name
    assert fast.header("amz-sdk-request") == slow.header("amz-sdk-request") == "attempt=1"
    assert fast.header("amz-sdk-invocation-id") == slow.header("amz-sdk-invocation-id")
    assert _ua(fast.header("User-Agent")) == _ua(slow.header("User-Agent"))
    s_auth, f_auth = _auth(slow.header("Authorization")), _auth(fast.header("Authorization"))
    assert f_auth["Credential"] == s_auth["Credential"]
    assert f_auth["SignedHeaders"] == s_auth["SignedHeaders"]
    assert f_auth["Signature"] == s_auth["Signature"]
    ua = [(k, v) for k, v in slow.headers if k == "User-Agent"]
    rest = [(k, v) for k, v in fast.headers if k != "User-Agent"]
    assert rest == [(k, v) for k, v in slow.headers if k != "User-Agent"], "header list differs"
    assert len(ua) == 1


def drawn(service: str, operation: str, count: int) -> list[dict[str, Any]]:
    """``count`` parameter sets from the model-driven strategy (Hypothesis, no example())."""
    strategy = valid_params(load_service(service).operation(operation))
    found: list[dict[str, Any]] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(params: dict[str, Any]) -> None:
        found.append(params)

    collect()
    return found


@pytest.mark.anyio
@pytest.mark.parametrize(("service", "operation"), SEED_OPS, ids=[f"{s}.{o}" for s, o in SEED_OPS])
async def test_requests_are_identical(
    service: str,
    operation: str,
    pair: Pair,
    server: CaptureServer,
    frozen: Callable[[], None],
) -> None:
    examples = HAND_WRITTEN[(service, operation)] + drawn(service, operation, 6)
    sent = 0
    for params in examples:
        call = Call(service, operation, params)
        try:
            _, (slow, fast) = await both(pair, server, call, frozen)
        except Exception as exc:  # botocore could not serialize them: FastTransport neither
            await assert_fails_alike(pair[1], server, call, exc)
            continue
        sent += 1
        try:
            assert_same_request(slow, fast)
        except AssertionError as exc:
            raise AssertionError(f"{service}.{operation}({params!r}): {exc}") from exc
    assert sent >= len(examples) - 1
    assert len(server.requests) == 2 * sent


async def assert_fails_alike(
    fast: FastTransport, server: CaptureServer, call: Call, expected: Exception
) -> None:
    """``fast`` raises what aiobotocore raised for ``call``, and sends nothing either."""
    before = len(server.requests)
    with pytest.raises(type(expected)) as info:
        await fast.send(call)
    assert str(info.value) == str(expected)
    assert len(server.requests) == before


@pytest.mark.anyio
@pytest.mark.parametrize(
    "call",
    [
        Call("greengrassv2", "GetDeployment", {}),  # a missing URI label
        Call("iot", "ListThings", {"noSuchMember": 1}),
        Call("proton", "ListEnvironmentTemplateVersions", {"templateName": "t", "x": 1}),
    ],
)
async def test_params_botocore_cannot_serialize_fail_alike(
    call: Call, pair: Pair, server: CaptureServer
) -> None:
    with pytest.raises(Exception) as info:
        await pair[0].send(call)
    await assert_fails_alike(pair[1], server, call, info.value)
    assert server.requests == []


@pytest.mark.anyio
async def test_tokens_and_invocation_ids_are_fresh_uuids_without_freezing(
    pair: Pair, server: CaptureServer
) -> None:
    # Unfrozen: each transport fills its own token; they differ, in the same place and format,
    # and the caller's params are left alone.
    params = {"packageName": "p", "versionName": "v"}
    _, (slow, fast) = await both(pair, server, Call("iot", "CreatePackageVersion", params))
    assert params == {"packageName": "p", "versionName": "v"}
    tokens = [dict(parse_qsl(urlsplit(c.target).query))["clientToken"] for c in (slow, fast)]
    assert all(UUID_RE.match(t) for t in tokens) and tokens[0] != tokens[1]
    ids = [c.header("amz-sdk-invocation-id") for c in (slow, fast)]
    assert all(i and UUID_RE.match(i) for i in ids) and ids[0] != ids[1]
    for captured in (slow, fast):
        assert "/iot/aws4_request" in _auth(captured.header("Authorization"))["Credential"]


@pytest.mark.anyio
async def test_python_style_operation_names_work_like_aiobotocore(
    pair: Pair, server: CaptureServer, frozen: Callable[[], None]
) -> None:
    _, (slow, fast) = await both(pair, server, Call("iot", "list_things", {}), frozen)
    assert_same_request(slow, fast)


@pytest.mark.anyio
async def test_session_token_and_refreshable_credentials(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: CaptureServer,
    frozen: Callable[[], None],
) -> None:
    # credential_process gives refreshable credentials with a session token: X-Amz-Security-Token
    # is signed, and the signature still matches.
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = {
        "Version": 1,
        "AccessKeyId": "ASIAEXAMPLE",
        "SecretAccessKey": "secret/with+chars",
        "SessionToken": "token==",
        "Expiration": expiry,
    }
    script = tmp_path / "creds.py"
    script.write_text(f"print({json.dumps(json.dumps(answer))})\n")
    config = tmp_path / "config"
    config.write_text(f"[profile p]\ncredential_process = {sys.executable} {script}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    kwargs: dict[str, Any] = {"endpoint_url": server.url, "region": "eu-west-1", "profile": "p"}
    async with AioBotocoreTransport(**kwargs) as slow_t, FastTransport(**kwargs) as fast_t:
        assert fast_t.identity == slow_t.identity == "p"
        call = Call("greengrassv2", "ListDeployments", {"maxResults": 1})
        _, (slow, fast) = await both((slow_t, fast_t), server, call, frozen)
        assert fast_t._refreshable is not None
    assert_same_request(slow, fast)
    assert fast.header("X-Amz-Security-Token") == "token=="
    assert "x-amz-security-token" in _auth(fast.header("Authorization"))["SignedHeaders"]
    assert "/eu-west-1/greengrass/aws4_request" in _auth(fast.header("Authorization"))["Credential"]


# -- the signer alone, against botocore's SigV4Auth ---------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_token = st.text("abcXYZ019-_.~%/+=& :", max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    segments=st.lists(_token, min_size=0, max_size=4),
    query=st.lists(st.tuples(_token, _token), max_size=4),
    headers=st.dictionaries(
        st.sampled_from(["Content-Type", "X-Amz-Target", "X-Custom", "User-Agent", "Expect"]),
        st.text("ab ;=/\t", max_size=10),
    ),
    body=st.binary(max_size=40),
    token=st.none() | _text,
    region=st.sampled_from(["us-east-1", "eu-west-1"]),
    service=st.sampled_from(["iot", "greengrass", "iotmanagedintegrations"]),
    port=st.sampled_from(["", ":80", ":443", ":8080"]),
    scheme=st.sampled_from(["http", "https"]),
    secret=_text,
)
def test_signer_matches_botocore_sigv4auth(
    method: str,
    segments: list[str],
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    token: str | None,
    region: str,
    service: str,
    port: str,
    scheme: str,
    secret: str,
) -> None:
    from urllib.parse import quote

    path = "/" + "/".join(quote(s, safe="") for s in segments)
    url = f"{scheme}://Example.COM{port}{path}"
    if query:
        url += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FIXED)
        patch.setattr(_fast_sigv4, "clock", lambda: FIXED_EPOCH)
        botocore.auth.SigV4Auth(Credentials("AKID", secret, token), service, region).add_auth(
            request
        )
        mine = dict(headers)
        signer = _fast_sigv4.SigV4Signer()
        for _ in range(2):  # the second time from the cached key
            signer.sign(
                method,
                url,
                mine,
                body,
                access_key="AKID",
                secret_key=secret,
                token=token,
                region=region,
                service=service,
            )
    assert mine == dict(request.headers.items())


def test_signing_keys_are_cached_per_day_region_and_service() -> None:
    signer = _fast_sigv4.SigV4Signer()
    key = signer.signing_key("s", "20260504", "us-east-1", "iot")
    assert signer.signing_key("s", "20260504", "us-east-1", "iot") is key
    assert signer.signing_key("s", "20260505", "us-east-1", "iot") != key
    assert signer.signing_key("s", "20260504", "us-east-1", "greengrass") != key
    expected = botocore.auth.SigV4Auth(Credentials("a", "s"), "iot", "us-east-1")
    chain = b"AWS4s"
    for part in ("20260504", "us-east-1", "iot", "aws4_request"):
        chain = expected._sign(chain, part)
    assert key == chain
    assert hashlib.sha256(key).digest()  # bytes, usable as an HMAC key


# -- reply equivalence --------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@dataclass(frozen=True)
class Case:
    """A canned answer to one call, and what both transports must read from it."""

    call: Call
    canned: Canned
    expect: dict[str, Any]


_REQID = ("x-amzn-RequestId", "5f2b2c6e-0000-4000-8000-00000000abcd")
_JSON = ("Content-Type", "application/json")
CASES = {
    "rest-json success": Case(
        Call("iot", "CreateThing", {"thingName": "t"}),
        Canned(
            200, _json({"thingName": "t", "thingArn": "arn:t", "thingId": "id"}), [_JSON, _REQID]
        ),
        {"status": 200, "output": {"thingName": "t", "thingArn": "arn:t", "thingId": "id"}},
    ),
    "201 success, nested": Case(
        Call("greengrassv2", "CreateDeployment", {"targetArn": ARN}),
        Canned(201, _json({"deploymentId": "d", "iotJobId": "j", "iotJobArn": "a"}), [_JSON]),
        {"status": 201, "output": {"deploymentId": "d", "iotJobId": "j", "iotJobArn": "a"}},
    ),
    "page with timestamps": Case(
        Call("greengrassv2", "ListDeployments", {}),
        Canned(
            200,
            _json(
                {
                    "deployments": [
                        {
                            "deploymentId": "d",
                            "creationTimestamp": 1777939198.5,
                            "isLatestForTarget": True,
                        }
                    ],
                    "nextToken": "n",
                }
            ),
            [_JSON, _REQID],
        ),
        {"status": 200},
    ),
    "iso timestamps, capitalised members": Case(
        Call("iot-managed-integrations", "ListOtaTasks", {}),
        Canned(
            200,
            _json(
                {"Tasks": [{"TaskId": "t", "CreatedAt": "2026-05-04T23:59:58Z"}], "NextToken": "x"}
            ),
            [_JSON],
        ),
        {"status": 200},
    ),
    "rest-json x-amzn-ErrorType": Case(
        Call("iot", "CreateThing", {"thingName": "t"}),
        Canned(
            409,
            _json({"message": "Thing t already exists", "resourceId": "i", "resourceArn": "a"}),
            [
                _JSON,
                _REQID,
                ("x-amzn-ErrorType", "ResourceAlreadyExistsException:http://internal.amazon.com/"),
            ],
        ),
        {"status": 409, "error_code": "ResourceAlreadyExistsException"},
    ),
    "json __type with namespace": Case(
        Call("proton", "ListEnvironmentTemplateVersions", {"templateName": "t"}),
        Canned(
            400,
            _json(
                {"__type": "com.amazonaws.proton#ThrottlingException", "message": "Rate exceeded"}
            ),
            [("Content-Type", "application/x-amz-json-1.0"), _REQID],
        ),
        {"status": 400, "error_code": "ThrottlingException", "error_message": "Rate exceeded"},
    ),
    "json __type bare, Message": Case(
        Call("proton", "CreateEnvironmentTemplateVersion", {"templateName": "t", "source": {}}),
        Canned(
            400,
            _json({"__type": "ValidationException", "Message": "bad"}),
            [("Content-Type", "application/x-amz-json-1.0")],
        ),
        {"status": 400, "error_code": "ValidationException", "error_message": "bad"},
    ),
    "greengrass 429 with Retry-After": Case(
        Call("greengrassv2", "ListDeployments", {}),
        Canned(
            429,
            _json({"message": "Rate exceeded", "quotaCode": "q", "serviceCode": "s"}),
            [_JSON, _REQID, ("x-amzn-ErrorType", "ThrottlingException"), ("Retry-After", "3")],
        ),
        {"status": 429, "error_code": "ThrottlingException", "retry_after": 3.0},
    ),
    "greengrass 500 with Retry-After": Case(
        Call("greengrassv2", "GetDeployment", {"deploymentId": "d"}),
        Canned(
            500,
            _json({"message": "oops"}),
            [_JSON, ("x-amzn-ErrorType", "InternalServerException"), ("Retry-After", "5")],
        ),
        {"status": 500, "error_code": "InternalServerException", "retry_after": 5.0},
    ),
    "iotwireless capital Message, body code": Case(
        Call(
            "iotwireless",
            "CreateFuotaTask",
            {"FirmwareUpdateImage": "i", "FirmwareUpdateRole": "r"},
        ),
        Canned(
            409,
            _json({"code": "ConflictException", "Message": "exists", "ResourceId": "r"}),
            [_JSON],
        ),
        {"status": 409, "error_code": "ConflictException"},
    ),
    "500 with an empty body": Case(
        Call("iot", "ListThings", {}),
        Canned(500, b"", [_JSON]),
        {"status": 500, "error_code": "500"},
    ),
    "404 with an HTML body": Case(
        Call("iot", "ListThingsInThingGroup", {"thingGroupName": "g"}),
        Canned(404, b"<html><body>Not Found</body></html>", [("Content-Type", "text/html")]),
        {"status": 404},
    ),
    "503 with an HTML body": Case(
        Call("iot-managed-integrations", "CreateOtaTask", {"S3Url": "s", "OtaType": "ONE_TIME"}),
        Canned(503, b"<html>busy</html>", [("Content-Type", "text/html")]),
        {"status": 503, "error_code": "503"},
    ),
    "400 with a body that is not JSON": Case(
        Call("iot", "CreatePackage", {"packageName": "p"}),
        Canned(400, b"not json", [_JSON, ("x-amzn-ErrorType", "ValidationException")]),
        {"status": 400, "error_code": "ValidationException"},
    ),
    "repeated and mixed-case headers": Case(
        Call("iotwireless", "ListFuotaTasks", {}),
        Canned(
            200,
            _json({"FuotaTaskList": [{"Id": "i", "Arn": "a", "Name": "n"}]}),
            [_JSON, ("X-Thing", "1"), ("x-thing", "2"), ("X-AMZN-REQUESTID", "R")],
        ),
        {"status": 200, "request_id": "R"},
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(CASES))
async def test_replies_are_equal(name: str, pair: Pair, server: CaptureServer) -> None:
    case = CASES[name]
    server.canned = case.canned
    (slow, fast), _ = await both(pair, server, case.call)
    assert fast == slow
    assert fast.body == case.canned.body
    for attr, value in case.expect.items():
        assert getattr(fast, attr) == value, attr
    assert fast.headers["date"] == DATE


@pytest.mark.anyio
async def test_connection_refused_is_status_0_on_both() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kwargs: dict[str, Any] = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "credentials": CREDENTIALS,
    }
    async with AioBotocoreTransport(**kwargs) as slow_t, FastTransport(**kwargs) as fast_t:
        call = Call("iot", "ListThings", {"maxResults": 1})
        slow, fast = await slow_t.send(call), await fast_t.send(call)
    assert fast == slow
    assert fast.status == 0
    assert fast.error_code == "EndpointConnectionError"
    assert f"127.0.0.1:{port}/things?maxResults=1" in fast.error_message


@pytest.mark.anyio
async def test_read_timeout_is_status_0_on_both(server: CaptureServer) -> None:
    server.canned = Canned(delay=1.0)
    kwargs: dict[str, Any] = {
        "endpoint_url": server.url,
        "credentials": CREDENTIALS,
        "read_timeout": 0.2,
    }
    async with AioBotocoreTransport(**kwargs) as slow_t, FastTransport(**kwargs) as fast_t:
        call = Call("iot", "ListThings", {})
        slow, fast = await slow_t.send(call), await fast_t.send(call)
    assert fast == slow
    assert (fast.status, fast.error_code) == (0, "ReadTimeoutError")


@pytest.mark.anyio
async def test_host_prefix_is_applied_like_botocore(server: CaptureServer) -> None:
    # servicediscovery DiscoverInstances has hostPrefix "data-": both send to data-localhost,
    # which does not resolve, so both fail alike, naming the same prefixed URL.
    kwargs: dict[str, Any] = {
        "endpoint_url": server.url.replace("127.0.0.1", "localhost"),
        "credentials": CREDENTIALS,
    }
    call = Call("servicediscovery", "DiscoverInstances", {"NamespaceName": "n", "ServiceName": "s"})
    async with AioBotocoreTransport(**kwargs) as slow_t, FastTransport(**kwargs) as fast_t:
        slow, fast = await slow_t.send(call), await fast_t.send(call)
    assert fast == slow
    assert fast.status == 0 and "data-localhost" in fast.error_message


@pytest.mark.anyio
async def test_no_credentials_is_status_0_on_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: CaptureServer
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    kwargs: dict[str, Any] = {"endpoint_url": server.url, "region": "us-east-1"}
    async with AioBotocoreTransport(**kwargs) as slow_t, FastTransport(**kwargs) as fast_t:
        call = Call("iot", "ListThings", {})
        slow, fast = await slow_t.send(call), await fast_t.send(call)
    assert fast == slow
    assert (fast.status, fast.error_code) == (0, "NoCredentialsError")
    assert server.requests == []


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("service", "operation", "reason"),
    [
        ("lambda", "InvokeWithResponseStream", "event streams"),
        ("kinesis-video-media", "GetMedia", "streaming"),
        ("glacier", "ListVaults", "customizations"),
        ("s3", "ListBuckets", "protocol 'rest-xml'"),
        ("sqs", "ListQueues", "customizations.*_handle_sqs_compatible_error"),
    ],
)
async def test_unsupported_operations_are_refused_by_name(
    service: str, operation: str, reason: str, server: CaptureServer
) -> None:
    async with FastTransport(endpoint_url=server.url, credentials=CREDENTIALS) as transport:
        with pytest.raises(InvalidArgument, match=f"{operation}.*{reason}"):
            await transport.send(Call(service, operation, {}))
    assert server.requests == []


@pytest.mark.anyio
async def test_an_unknown_operation_is_refused(server: CaptureServer) -> None:
    async with FastTransport(endpoint_url=server.url, credentials=CREDENTIALS) as transport:
        with pytest.raises(UnknownOperation):
            await transport.send(Call("iot", "MakeCoffee", {}))


# -- against the emulator -----------------------------------------------------------------------

_VOLATILE_HEADERS = {"date", "x-amzn-requestid", "content-length"}


def _stable(reply: Reply) -> Reply:
    """``reply`` without what differs between two runs against a fresh emulator."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            return re.sub(
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", value
            )
        if isinstance(value, dt.datetime):
            return "<time>"
        return value

    headers = {k: v for k, v in reply.headers.items() if k not in _VOLATILE_HEADERS}
    return replace(
        reply,
        output=scrub(reply.output),
        error_message=scrub(reply.error_message),
        request_id="<id>" if reply.request_id else None,
        headers=headers,
        body=None,
    )


@pytest.mark.anyio
async def test_the_same_conversation_with_the_emulator(harness_emulator: EmulatorThread) -> None:
    calls = [
        Call(
            "iot",
            "CreateThing",
            {"thingName": "t1", "attributePayload": {"attributes": {"a": "1"}}},
        ),
        Call("iot", "CreateThing", {"thingName": "t1"}),
        Call("iot", "CreateThing", {"thingName": "bad name!"}),
        Call("iot", "DescribeThing", {"thingName": "nope"}),
        Call("iot", "CreateThingGroup", {"thingGroupName": "g"}),
        Call("iot", "AddThingToThingGroup", {"thingGroupName": "g", "thingName": "t1"}),
        Call("iot", "ListThingsInThingGroup", {"thingGroupName": "g"}),
        Call("iot", "ListThings", {"maxResults": 1}),
        Call("iot", "CreatePackage", {"packageName": "p"}),
        Call("iot", "CreatePackageVersion", {"packageName": "p", "versionName": "v1"}),
        Call("iot", "ListPackageVersions", {"packageName": "p"}),
        Call("greengrassv2", "CreateDeployment", {"targetArn": ARN, "components": {}}),
        Call("greengrassv2", "ListDeployments", {}),
        Call("greengrassv2", "GetDeployment", {"deploymentId": "missing"}),
        Call("iotwireless", "ListFuotaTasks", {}),
        Call("proton", "ListEnvironmentTemplateVersions", {"templateName": "none"}),
        Call("iot-managed-integrations", "ListOtaTasks", {}),
    ]
    conversations: list[list[Reply]] = []
    for cls in (AioBotocoreTransport, FastTransport):
        harness_emulator.call(harness_emulator.core.reset)
        async with cls(
            endpoint_url=harness_emulator.url, region="us-east-1", credentials=CREDENTIALS
        ) as transport:
            conversations.append([_stable(await transport.send(call)) for call in calls])
    slow, fast = conversations
    for call, s, f in zip(calls, slow, fast, strict=True):
        assert f == s, call
    statuses = [r.status for r in fast]
    assert 200 in statuses and 409 in statuses and 400 in statuses and 404 in statuses
