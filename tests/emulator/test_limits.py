"""What a client can make the emulator's HTTP server hold: connections, time and memory.

Real sockets on 127.0.0.1 against an emulator in a child process (``harness emulator``, memory read
from /proc) or on a thread (short configured timeouts).
"""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from harness.emulator import EmulatorThread, Limits
from harness.emulator._http_parse import FD_RESERVE, default_max_connections

SIG = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/iot/aws4_request, SignedHeaders=host, Signature=0"
ADMIN = {"X-Harness-Admin": "1"}
MB = 1024 * 1024


def create_thing(name: str, extra: str = "") -> bytes:
    return (
        f"POST /things/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: {SIG}\r\n"
        f"Content-Length: 2\r\n{extra}\r\n{{}}"
    ).encode()


def spawn(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return proc, int(line.rsplit(":", 1)[1])


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def memory_kb(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process, in kB."""
    with open(f"/proc/{pid}/status") as status:
        found = re.search(rf"^{field}:\s*(\d+) kB", status.read(), re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def answer_and_eof(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes (or ``deadline`` passes: then ``b"TIMEOUT"``)."""
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return data + b"TIMEOUT"


def status_of(data: bytes) -> int | None:
    found = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return int(found.group(1)) if found else None


def body_of(data: bytes) -> dict[str, Any]:
    return dict(json.loads(data.partition(b"\r\n\r\n")[2]))


# ---------------------------------------------------------------------- in a child process
def test_300_partial_heads_hold_under_100_mb_and_time_out() -> None:
    """The audit's attack: 300 connections each sending most of a large head and then nothing."""
    proc, port = spawn("--header-timeout", "4")
    socks: list[socket.socket] = []
    try:
        assert call(port, "GET", "/_harness/health")[0] == 200
        base = memory_kb(proc.pid, "VmRSS")
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(sock)
            try:
                sock.sendall(b"POST /things/x HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 120_000)
            except OSError:
                pass  # refused past the cap on buffered heads: it answers and closes
        sent = time.monotonic()
        time.sleep(1.0)
        # A well-behaved client still gets through while they are held.
        status, stats = call(port, "GET", "/_harness/stats")
        assert status == 200
        held = stats["http"]["buffered_head_bytes"]
        assert 8 * MB < held <= 16 * MB  # it holds what it was sent, up to its cap
        assert memory_kb(proc.pid, "VmRSS") - base < 30 * 1024

        # Each connection is answered and closed: 503 past the cap at once, 408 at the timeout.
        deadline = time.monotonic() + 60
        answers = [answer_and_eof(sock, deadline) for sock in socks]
        took = time.monotonic() - sent
        statuses = [status_of(a) for a in answers]
        assert set(statuses) == {408, 503}, {a[:80] for a in answers}
        assert 3.0 <= took < 60
        timed_out = body_of(answers[statuses.index(408)])
        assert timed_out == {
            "__type": "RequestTimeoutException",
            "message": "the request head took longer than 4 s",
        }
        assert "incomplete requests" in body_of(answers[statuses.index(503)])["message"]

        # Their memory is no longer held, and the server serves as before.
        _, stats = call(port, "GET", "/_harness/stats")
        assert stats["http"]["buffered_bytes"] == stats["http"]["buffered_head_bytes"] == 0
        assert stats["http"]["connections"] == 1  # this request's own
        status, thing = call(port, "POST", "/things/after", b"{}", {"Authorization": SIG})
        assert status == 200 and thing["thingName"] == "after"
        peak = memory_kb(proc.pid, "VmHWM")
        assert peak < 100 * 1024, f"peak RSS {peak} kB"
        print(f"RSS before {base} kB, peak {peak} kB with 300 partial heads")
    finally:
        for sock in socks:
            sock.close()
        stop(proc)


def test_at_the_connection_cap_the_longest_waiting_connection_makes_room() -> None:
    proc, port = spawn("--max-connections", "10", "--header-timeout", "120")
    socks: list[socket.socket] = []
    try:
        for i in range(10):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(f"GET /_harness/health HTTP/1.1\r\nX-Slow-{i}: ".encode())
            socks.append(sock)
            time.sleep(0.05)  # in order of age
        time.sleep(0.5)
        # A new client is served at once: the oldest incomplete request is dropped for it.
        assert call(port, "GET", "/_harness/health") == (200, {"status": "ok"})
        first = answer_and_eof(socks[0], time.monotonic() + 30)
        assert status_of(first) == 503
        assert body_of(first)["message"] == "the emulator is at its limit of 10 connections"
        socks[1].sendall(b"x\r\nConnection: close\r\n\r\n")  # the others can still finish
        assert status_of(answer_and_eof(socks[1], time.monotonic() + 30)) == 200
        for sock in socks:
            sock.close()
        socks.clear()

        # When every connection has an answer in progress, a new one is refused with a 503.
        status, _ = call(port, "PUT", "/_harness/config", b'{"latency_ms": 6000}', ADMIN)
        assert status == 200
        for i in range(10):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(create_thing(f"busy{i}"))
            socks.append(sock)
        time.sleep(1.0)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
            refused = answer_and_eof(extra, time.monotonic() + 4)
        assert status_of(refused) == 503 and b"limit of 10 connections" in refused
        for sock in socks:  # the busy ones are answered in full
            sock.settimeout(30)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # ... and are now idle: a new client makes room again.
        assert call(port, "GET", "/_harness/health")[0] == 200
    finally:
        for sock in socks:
            sock.close()
        stop(proc)


def test_default_connection_cap_fits_1024_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert default_max_connections() == 1024 - FD_RESERVE
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, 4096))
    assert default_max_connections() == 4096
    monkeypatch.setattr(resource, "getrlimit", lambda _: (40, 40))
    assert default_max_connections() == 16
    assert Limits().max_connections == 16  # the default is read when the limits are made


# -------------------------------------------------------------------------- on a thread
@pytest.fixture
def limited() -> Iterator[EmulatorThread]:
    limits = Limits(max_body=1000, header_timeout=1.0, idle_timeout=1.5)
    with EmulatorThread(limits=limits) as emu:
        yield emu


def connect(emu: EmulatorThread) -> socket.socket:
    return socket.create_connection(("127.0.0.1", emu.emulator.port), timeout=30)


def test_a_body_over_max_body_is_413_with_a_modeled_error(limited: EmulatorThread) -> None:
    with connect(limited) as sock:
        sock.sendall(b"POST /things/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        answer = answer_and_eof(sock, time.monotonic() + 30)
    assert status_of(answer) == 413
    assert b"\r\nx-amzn-ErrorType: RequestEntityTooLargeException\r\n" in answer
    assert body_of(answer)["message"] == "the request body is larger than 1000 bytes"
    # An SDK reads it as an error like any other.
    iot = boto3.client(
        "iot",
        endpoint_url=limited.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    attributes = {f"a{i}": "v" * 800 for i in range(3)}
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        iot.create_thing(thingName="big", attributePayload={"attributes": attributes})
    error = caught.value.response
    assert error["Error"]["Code"] == "RequestEntityTooLargeException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert iot.create_thing(thingName="small")["thingName"] == "small"


def test_default_body_cap_admits_the_largest_modeled_value(harness_emulator: Any) -> None:
    """Greengrass's ComponentConfigurationString takes 10 MiB; JSON escaping can double it."""
    merge = '"' * (10 * MB)
    body = json.dumps(
        {
            "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/big",
            "components": {
                "c": {"componentVersion": "1.0.0", "configurationUpdate": {"merge": merge}}
            },
        }
    ).encode()
    assert len(body) > 20 * MB
    auth = SIG.replace("/iot/", "/greengrass/")
    status, made = call(
        harness_emulator.emulator.port,
        "POST",
        "/greengrass/v2/deployments",
        body,
        {"Authorization": auth, "Content-Type": "application/json"},
    )
    assert status == 201, made
    assert Limits().max_body >= 3 * 10 * MB


def test_a_head_that_never_completes_gets_408_after_the_header_timeout(
    limited: EmulatorThread,
) -> None:
    with connect(limited) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /_harness/health HTTP/1.1\r\n")
        # Dripping keeps data coming, but the head must be complete in time.
        for _ in range(5):
            time.sleep(0.1)
            sock.sendall(b"X-A: b\r\n")
        answer = answer_and_eof(sock, start + 30)
        took = time.monotonic() - start
    assert status_of(answer) == 408 and b"Connection: close" in answer
    assert body_of(answer)["message"] == "the request head took longer than 1 s"
    assert 0.7 <= took < 10


def test_a_body_must_keep_arriving(limited: EmulatorThread) -> None:
    with connect(limited) as sock:
        # Slow but steady: each pause is shorter than the timeout, the whole longer.
        sock.sendall(b"POST /things/steady HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n")
        sock.sendall(f"Authorization: {SIG}\r\n\r\n".encode())
        for part in (b"{", b" ", b" ", b"}"):
            time.sleep(0.3)
            sock.sendall(part)
        sock.settimeout(30)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # Then a body that stops.
        sock.sendall(b"POST /things/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n{")
        stalled = time.monotonic()
        answer = answer_and_eof(sock, stalled + 30)
    assert status_of(answer) == 408
    assert body_of(answer)["message"] == "no part of the request body came for 1 s"
    assert 0.7 <= time.monotonic() - stalled < 10


def test_silent_and_idle_connections_are_closed(limited: EmulatorThread) -> None:
    with connect(limited) as silent, connect(limited) as idle:
        start = time.monotonic()
        idle.sendall(create_thing("idle"))
        idle.settimeout(30)
        assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
        answered = time.monotonic()
        # Connected but never sent a byte: closed after the header timeout, with no answer.
        assert answer_and_eof(silent, start + 30) == b""
        assert 0.7 <= time.monotonic() - start < 10
        # Kept alive after an answer: closed after the idle timeout.
        assert answer_and_eof(idle, answered + 30) == b""
        assert 1.1 <= time.monotonic() - answered < 10


def test_incomplete_requests_share_a_byte_budget() -> None:
    limits = Limits(max_head=1024, max_body=10_000, max_buffered=25_000, max_buffered_heads=3000)
    with EmulatorThread(limits=limits) as emu:
        head = f"POST /things/b HTTP/1.1\r\nAuthorization: {SIG}\r\nContent-Length: 10000\r\n\r\n"
        first, second, third = connect(emu), connect(emu), connect(emu)
        try:
            for sock in (first, second):
                sock.sendall(head.encode() + b"{" + b" " * 9000)
            time.sleep(0.3)
            third.sendall(head.encode() + b"{" + b" " * 9000)
            refused = answer_and_eof(third, time.monotonic() + 30)
            assert status_of(refused) == 503
            assert body_of(refused)["__type"] == "ServiceUnavailableException"
            first.sendall(b" " * 998 + b"}")  # completes: its bytes are released
            first.settimeout(30)
            assert first.recv(65536).startswith(b"HTTP/1.1 200 ")
            with connect(emu) as fourth:
                fourth.sendall(head.encode() + b"{" + b" " * 9998 + b"}")
                fourth.settimeout(30)
                assert fourth.recv(65536).startswith(b"HTTP/1.1 200 ")
            # Incomplete heads have a budget of their own.
            with connect(emu) as a, connect(emu) as b, connect(emu) as c:
                for sock in (a, b):
                    sock.sendall(b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * 1000)
                time.sleep(0.3)
                c.sendall(b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * 1000)
                assert status_of(answer_and_eof(c, time.monotonic() + 30)) == 503
        finally:
            for sock in (first, second, third):
                sock.close()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_head", 10, "max_head=10: expected a whole number >= 1024"),
        ("max_body", True, "max_body=True: expected a whole number >= 0"),
        ("max_connections", 0, "max_connections=0: expected a whole number >= 1"),
        ("header_timeout", float("inf"), "header_timeout=inf: expected seconds"),
        ("idle_timeout", float("nan"), "idle_timeout=nan: expected seconds"),
        ("idle_timeout", "5", "idle_timeout='5': expected seconds"),
        ("max_buffered", 100, "max_buffered=100: expected at least max_body + max_head"),
    ],
)
def test_limits_are_checked(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Limits(**{field: value})


def test_a_client_that_stops_reading_its_answers_is_dropped() -> None:
    with EmulatorThread(limits=Limits(idle_timeout=4.0)) as emu:
        server = emu.emulator._server
        assert server is not None
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", emu.emulator.port))
        sock.setblocking(False)
        batch = b"GET /_harness/stats HTTP/1.1\r\nHost: x\r\n\r\n" * 100
        try:
            # Pipeline requests without reading until the server stops reading them (its
            # answers fill every buffer on the way).
            stuck_since = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    sock.send(batch)
                    stuck_since = None
                except BlockingIOError:
                    stuck_since = stuck_since or time.monotonic()
                    if time.monotonic() - stuck_since > 0.3:
                        break
                    time.sleep(0.02)
            assert stuck_since is not None, "the server never stopped reading"
            assert emu.call(lambda: len(server.connections)) == 1
            # Dropped after the idle timeout although answers were still waiting to be written.
            deadline = time.monotonic() + 30
            while emu.call(lambda: len(server.connections)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert emu.call(lambda: len(server.connections)) == 0
            sock.setblocking(True)
            sock.settimeout(30)
            with pytest.raises(ConnectionResetError):  # aborted, not closed after the answers
                while sock.recv(1 << 20):
                    pass
        finally:
            sock.close()
