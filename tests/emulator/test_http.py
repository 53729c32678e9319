"""The emulator's own HTTP/1.1 server: the parser alone, a connection without sockets, and real
sockets (keep-alive, pipelining, chunked bodies, 100-continue, limits, garbage, HTTP/1.0)."""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from harness.emulator import Emulator, EmulatorThread
from harness.emulator._http import (
    BadRequest,
    Headers,
    HttpServer,
    Limits,
    Query,
    RequestHead,
    _check_partial_head,
    _Connection,
    parse_head,
    read_chunked,
)

SIG = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/iot/aws4_request, SignedHeaders=host, Signature=0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def head(raw: bytes, limits: Limits | None = None) -> RequestHead:
    return parse_head(raw, 0, len(raw), limits or Limits())


def create_thing(name: str, body: bytes = b"{}", extra: str = "", version: str = "1.1") -> bytes:
    return (
        f"POST /things/{name} HTTP/{version}\r\nHost: x\r\nAuthorization: {SIG}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


# ------------------------------------------------------------------------------------ parser
class TestParseHead:
    def test_request_line_headers_and_defaults(self) -> None:
        h = head(
            b"POST /things/a%2Fb?x=1&x=2 HTTP/1.1\r\nX-Amz-Target: T.Op\r\n"
            b"content-length: 7\r\nAccept: a\r\nACCEPT:  b \r\nEmpty:"
        )
        assert (h.method, h.path, h.query) == ("POST", "/things/a%2Fb", "x=1&x=2")
        assert (h.length, h.chunked, h.keep_alive, h.http10, h.expect_continue) == (
            7,
            False,
            True,
            False,
            False,
        )
        assert h.headers.get("x-amz-target") == h.headers["X-AMZ-TARGET"] == "T.Op"
        assert h.headers.get("Accept") == "a, b"  # repeated headers are joined
        assert h.headers.get("empty") == "" and "EMPTY" in h.headers
        assert h.headers.get("missing") is None and h.headers.get("missing", "d") == "d"

    def test_connection_semantics(self) -> None:
        assert not head(b"GET / HTTP/1.1\r\nConnection: Close").keep_alive
        assert not head(b"GET / HTTP/1.0\r\nHost: x").keep_alive
        h10 = head(b"GET / HTTP/1.0\r\nConnection: keep-alive")
        assert h10.keep_alive and h10.http10
        assert head(b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3").expect_continue
        assert not head(b"PUT / HTTP/1.0\r\nExpect: 100-continue").expect_continue

    def test_chunked_and_absolute_target(self) -> None:
        h = head(b"POST http://host:1/a/b?q HTTP/1.1\r\nTransfer-Encoding: Chunked")
        assert (h.path, h.query, h.chunked) == ("/a/b", "q", True)
        assert head(b"GET http://host HTTP/1.1").path == "/"

    @pytest.mark.parametrize(
        ("raw", "status"),
        [
            (b"GET /", 400),
            (b"GET / HTTP/1.1 extra", 400),
            (b"G@T / HTTP/1.1", 400),
            (b"GET / HTTP/2.0", 505),
            (b"GET / FTP/1.1", 400),
            (b"GET nowhere HTTP/1.1", 400),
            (b"GET /\x01 HTTP/1.1", 400),
            (b"GET / HTTP/1.1\r\nno colon", 400),
            (b"GET / HTTP/1.1\r\nName : space before colon", 400),
            (b"GET / HTTP/1.1\r\nA: 1\r\n folded", 400),
            (b"GET / HTTP/1.1\r\nA: 1\nB: 2", 400),
            (b"GET / HTTP/1.1\r\nA: 1\rB: 2", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: -1", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 1e3", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000, 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 101", 413),
        ],
    )
    def test_malformed_heads(self, raw: bytes, status: int) -> None:
        with pytest.raises(BadRequest) as info:
            head(raw, Limits(max_body=100))
        assert info.value.status == status

    def test_same_content_length_twice_is_fine(self) -> None:
        assert head(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2").length == 2


class TestQueryAndHeaders:
    def test_query_like_aiohttp(self) -> None:
        q = Query("a=1&a=2&b=x%20y+z&c=&d&e=%E2%9C%93")
        assert (q["a"], q.getall("a"), q["b"], q["c"], q["d"], q["e"]) == (
            "1",
            ["1", "2"],
            "x y z",
            "",
            "",
            "✓",
        )
        assert "a" in q and "z" not in q and q.getall("z") == [] and len(q) == 5
        assert dict(Query()) == {}

    def test_headers_mapping(self) -> None:
        h = Headers({"x-a": "1"})
        assert dict(h) == {"x-a": "1"} and len(h) == 1 and "X-A" in h and 3 not in h
        with pytest.raises(KeyError):
            h["nope"]


class TestChunked:
    def read(self, raw: bytes, limits: Limits | None = None) -> tuple[bytes, int] | None:
        return read_chunked(raw, 0, [0, 0], [], limits or Limits())

    def test_complete_with_extensions_and_trailers(self) -> None:
        raw = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT"
        assert self.read(raw) == (b"Wikipedia", len(raw) - 4)

    def test_resumes_byte_by_byte(self) -> None:
        raw = b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"
        state: list[int] = [0, 0]
        parts: list[tuple[int, int]] = []
        for end in range(len(raw)):
            assert read_chunked(raw[:end], 0, state, parts, Limits()) is None
        assert read_chunked(raw, 0, state, parts, Limits()) == (b"abc0123456789", len(raw))

    @pytest.mark.parametrize(
        ("raw", "status"),
        [
            (b"zz\r\nab\r\n", 400),
            (b"+2\r\nab\r\n", 400),
            (b"2\r\nabXX0\r\n\r\n", 400),
            (b"1" * 5000, 400),
            (b"65\r\n", 413),
        ],
    )
    def test_malformed(self, raw: bytes, status: int) -> None:
        with pytest.raises(BadRequest) as info:
            self.read(raw, Limits(max_body=100))
        assert info.value.status == status


# ------------------------------------------------------------------- a connection, no sockets
class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def statuses(data: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


@pytest.mark.anyio
async def test_pipelined_answers_keep_request_order_when_some_are_delayed() -> None:
    async def slow(tag: str) -> tuple[int, dict[str, str], bytes]:
        await asyncio.sleep(0.05)
        return 200, {"X-Tag": tag}, tag.encode()

    def app(method: str, path: str, query: str, headers: Headers, body: bytes) -> Any:
        tag = path.strip("/")
        return slow(tag) if tag.startswith("slow") else (200, {"X-Tag": tag}, tag.encode())

    server = HttpServer(app)
    conn = _Connection(server)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(
        b"GET /fast1 HTTP/1.1\r\n\r\nGET /slow1 HTTP/1.1\r\n\r\nGET /fast2 HTTP/1.1\r\n\r\n"
    )
    # The first answer is written at once; the third waits for the second.
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"fast1")
    await asyncio.sleep(0.1)
    rest = b"".join(transport.writes[1:])
    assert rest.index(b"slow1") < rest.index(b"fast2")
    conn.data_received(
        b"GET /fast3 HTTP/1.1\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n"
    )
    assert transport.writes[-1].endswith(b"fast3") and b"Connection: close" in transport.writes[-1]
    assert transport.closed
    conn.connection_lost(None)


@pytest.mark.anyio
async def test_app_errors_are_500_and_the_connection_lives_on() -> None:
    def app(method: str, path: str, query: str, headers: Headers, body: bytes) -> Any:
        if path == "/boom":
            raise RuntimeError("bug")
        return 204, {}, b""

    conn = _Connection(HttpServer(app))
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(b"GET /boom HTTP/1.1\r\n\r\nHEAD /ok HTTP/1.1\r\n\r\n")
    assert statuses(transport.writes[0]) == [500, 204] and not transport.closed
    conn.connection_lost(None)


@pytest.mark.anyio
async def test_random_bytes_never_escape_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    """Fragments of requests glued at random and cut at random: every outcome is an answer or
    nothing, never an exception out of the protocol nor a 500 from the parser."""
    pieces = [
        *(b"GET", b"POST", b" ", b"/", b"/a?b=c", b"HTTP/1.1", b"HTTP/1.0", b"\r\n", b"\r\n\r\n"),
        *(b"Content-Length: 3", b"Transfer-Encoding: chunked", b"Connection: close", b"abc"),
        *(b"Expect: 100-continue", b"3\r\nabc\r\n", b"0\r\n\r\n", b":", b"\x00", b"\xff", b"\n"),
    ]
    rng = random.Random(7)
    server = HttpServer(lambda *args: (200, {}, args[-1]))
    for _ in range(3000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        if rng.random() < 0.5:
            data = b"POST / HTTP/1.1\r\n" + data
        conn = _Connection(server)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        cuts = sorted({rng.randint(0, len(data)) for _ in range(3)} | {len(data)})
        start = 0
        for cut in cuts:
            conn.data_received(data[start:cut])
            start = cut
        conn.eof_received()
        conn.connection_lost(None)
        assert 500 not in statuses(b"".join(transport.writes)), data
    assert not caplog.records


# ------------------------------------------------------------------------------ real sockets
@pytest.fixture
def emu(harness_emulator: EmulatorThread) -> EmulatorThread:
    return harness_emulator


class Client:
    """A raw HTTP/1.1 client on one socket that reads responses one at a time."""

    def __init__(self, emu: EmulatorThread) -> None:
        self.sock = socket.create_connection(("127.0.0.1", emu.emulator.port), timeout=10)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status_line = self.file.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.lower()] = value.strip()
        body = self.file.read(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    def at_eof(self) -> bool:
        return self.file.read(1) == b""


@pytest.fixture
def client(emu: EmulatorThread) -> Iterator[Client]:
    c = Client(emu)
    yield c
    c.close()


def still_serving(emu: EmulatorThread) -> bool:
    c = Client(emu)
    try:
        c.send(b"GET /_harness/health HTTP/1.1\r\nHost: x\r\n\r\n")
        return c.response()[0] == 200
    finally:
        c.close()


def test_keep_alive_and_pipelining(client: Client) -> None:
    client.send(create_thing("k1"))
    status, headers, body = client.response()
    assert status == 200 and json.loads(body)["thingName"] == "k1"
    assert headers["content-type"] == "application/json" and headers["date"].endswith("GMT")
    assert headers["x-amzn-requestid"]
    client.send(create_thing("p1") + create_thing("p2") + create_thing("p3"))  # one write
    names = [json.loads(client.response()[2])["thingName"] for _ in range(3)]
    assert names == ["p1", "p2", "p3"]


def test_pipelined_order_under_injected_latency(emu: EmulatorThread, client: Client) -> None:
    emu.call(lambda: emu.core.configure({"latency_ms": [0, 40]}))
    client.send(b"".join(create_thing(f"l{i}") for i in range(8)))
    names = [json.loads(client.response()[2])["thingName"] for _ in range(8)]
    assert names == [f"l{i}" for i in range(8)]


def test_chunked_request_body(client: Client) -> None:
    body = b'{"attributePayload": {"attributes": {"color": "blue"}}}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:]))
    client.send(
        f"POST /things/chunky HTTP/1.1\r\nHost: x\r\nAuthorization: {SIG}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    client.send(chunks[:7])
    client.send(chunks[7:] + b"0\r\n\r\n")
    assert client.response()[0] == 200
    client.send(f"GET /things/chunky HTTP/1.1\r\nHost: x\r\nAuthorization: {SIG}\r\n\r\n".encode())
    assert json.loads(client.response()[2])["attributes"] == {"color": "blue"}


def test_expect_100_continue(client: Client) -> None:
    body = b"{}"
    client.send(
        f"POST /things/expect HTTP/1.1\r\nHost: x\r\nAuthorization: {SIG}\r\n"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    assert client.file.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert client.file.readline() == b"\r\n"
    client.send(body)
    assert client.response()[0] == 200


def test_connection_close_and_http10(emu: EmulatorThread) -> None:
    for request, expect in [
        (create_thing("c1", extra="Connection: close\r\n"), "close"),
        (create_thing("c2", version="1.0"), "close"),
    ]:
        c = Client(emu)
        try:
            c.send(request)
            status, headers, _ = c.response()
            assert (status, headers["connection"]) == (200, expect)
            assert c.at_eof()
        finally:
            c.close()
    c = Client(emu)
    try:
        c.send(create_thing("c3", version="1.0", extra="Connection: keep-alive\r\n"))
        assert c.response()[1]["connection"] == "keep-alive"
        c.send(b"GET /_harness/health HTTP/1.0\r\n\r\n")
        assert c.response()[0] == 200 and c.at_eof()
    finally:
        c.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        # Heads over the limit (lowered to 16 KiB below, so that the client is not still
        # sending megabytes when the server answers and closes: that races into a reset).
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20_000, 400),  # never ends
        (b"POST /things/x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello
        (b"GET / HTTP/1.1\r\n\x00\x01\x02garbage\r\n\r\n", 400),
        (b"HELLO\r\n", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnot hex\r\n", 400),
    ],
)
def test_unreadable_requests_get_4xx_and_a_closed_connection(
    emu: EmulatorThread,
    client: Client,
    request_bytes: bytes,
    status: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = emu.emulator._server
    assert isinstance(server, HttpServer)
    monkeypatch.setattr(server, "limits", Limits(max_head=16 * 1024))
    client.send(request_bytes)
    got, headers, body = client.response()
    assert (got, headers["connection"]) == (status, "close")
    assert json.loads(body)["message"]
    assert client.at_eof()
    assert still_serving(emu)


def test_client_closing_mid_request(emu: EmulatorThread) -> None:
    for partial in (b"POST /things/x HTTP/1.1\r\nContent-Le", create_thing("half")[:-1]):
        with socket.create_connection(("127.0.0.1", emu.emulator.port), timeout=10) as sock:
            sock.sendall(partial)
    with socket.create_connection(("127.0.0.1", emu.emulator.port), timeout=10) as sock:
        sock.sendall(create_thing("reset"))
        # linger 0: close with a reset, before the answer is read
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert still_serving(emu)


@pytest.mark.anyio
async def test_aiohttp_client_with_expect_and_chunks(emu: EmulatorThread) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"attributePayload": '
        yield b'{"attributes": {"a": "1"}}}'

    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{emu.url}/things/aio", data=b"{}", headers={"Authorization": SIG}, expect100=True
        ) as resp:
            assert resp.status == 200 and (await resp.json())["thingName"] == "aio"
        async with session.post(
            f"{emu.url}/things/aio2", data=chunks(), headers={"Authorization": SIG}
        ) as resp:
            assert resp.status == 200
        async with session.get(f"{emu.url}/things/aio2", headers={"Authorization": SIG}) as resp:
            assert (await resp.json())["attributes"] == {"a": "1"}


@pytest.mark.anyio
async def test_oversized_chunked_body_is_413() -> None:
    def app(method: str, path: str, query: str, headers: Headers, body: bytes) -> Any:
        return 200, {}, body

    server = HttpServer(app, Limits(max_body=10))
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n")
        writer.write(b"5\r\n67890\r\n")
        writer.write(b"1\r\nX\r\n0\r\n\r\n")
        answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 413 ")
    finally:
        writer.close()
        await writer.wait_closed()
        await server.stop()


@pytest.mark.anyio
async def test_stop_with_answers_in_progress() -> None:
    async def never() -> tuple[int, dict[str, str], bytes]:
        await asyncio.sleep(60)
        return 200, {}, b""

    server = HttpServer(lambda *args: never())
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        await server.stop()
        assert (await reader.read()).startswith(b"HTTP/1.1 503 ")
        assert await idle_reader.read() == b""
    finally:
        for w in (writer, idle_writer):
            w.close()
            await w.wait_closed()


@pytest.mark.anyio
async def test_aiohttp_server_option_still_works() -> None:
    async with Emulator(port=0, http="aiohttp") as emu:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{emu.url}/things/a", data=b"{}", headers={"Authorization": SIG}
            ) as resp:
                assert resp.status == 200
            async with session.get(f"{emu.url}/_harness/health") as resp:
                assert await resp.json() == {"status": "ok"}


def test_204_answers_carry_no_body_on_a_kept_alive_connection(harness_emulator: Any) -> None:
    """DeleteDeployment answers 204: a body would be read as the next answer's status line."""
    import boto3
    from botocore.config import Config

    gg = boto3.client(
        "greengrassv2",
        endpoint_url=harness_emulator.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    target = "arn:aws:iot:us-east-1:123456789012:thinggroup/g204"
    made = gg.create_deployment(targetArn=target, components={"c": {"componentVersion": "1.0.0"}})
    gg.cancel_deployment(deploymentId=made["deploymentId"])
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/greengrass/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    requests = (
        f"DELETE /greengrass/v2/deployments/{made['deploymentId']} HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: {auth}\r\nContent-Length: 0\r\n\r\n"
        f"GET /greengrass/v2/deployments HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    ).encode()
    host, port = harness_emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(requests)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    first_end = data.index(b"\r\n\r\n") + 4
    assert data.startswith(b"HTTP/1.1 204")
    assert b"content-length" not in data[:first_end].lower()
    assert data[first_end:].startswith(b"HTTP/1.1 200"), data[first_end : first_end + 40]


def test_default_head_limit_admits_the_longest_modeled_page_token() -> None:
    """Managed integrations allow a 65,535-character NextToken, all of it on the request line."""
    line = b"GET /ota-tasks?NextToken=" + b"A" * 65_535 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    stop = line.index(b"\r\n\r\n")
    assert stop < Limits().max_head  # the connection reads heads up to this size
    assert parse_head(line, 0, stop, Limits()).method == "GET"
    _check_partial_head(line[:stop], 0, Limits())  # not too large for the default
    with pytest.raises(BadRequest):
        _check_partial_head(line[:stop], 0, Limits(max_head=16 * 1024))
