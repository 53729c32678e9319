"""The admin API under /_harness/: who may change state, which settings it takes, and client tokens
whose requests never complete."""

from __future__ import annotations

import json
import socket
import struct
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest

from harness.emulator import ADMIN_HEADER, Emulator, EmulatorSettings, EmulatorThread
from harness.errors import InvalidArgument

GG = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/greengrass/aws4_request, SignedHeaders=host, Signature=0"
IOT = GG.replace("/greengrass/", "/iot/")
ADMIN = {ADMIN_HEADER: "1"}


def call(
    emu: EmulatorThread,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    req = urllib.request.Request(emu.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def things(emu: EmulatorThread) -> int:
    stats = call(emu, "GET", "/_harness/stats")[1]
    return int(stats["resources"].get("iot", {}).get("Thing", 0))


@pytest.fixture
def emu(harness_emulator: EmulatorThread) -> EmulatorThread:
    return harness_emulator


# ------------------------------------------------------------------------------- the guard
class TestGuard:
    def test_state_changing_calls_need_the_admin_header(self, emu: EmulatorThread) -> None:
        assert call(emu, "POST", "/things/kept", b"{}", {"Authorization": IOT})[0] == 200
        for method, path, body in [
            ("POST", "/_harness/reset", b""),
            ("PUT", "/_harness/config", b'{"fault_rate": 1}'),
            ("POST", "/_harness/snapshot", b'{"name": "x"}'),  # any non-GET, known or not
            ("DELETE", "/_harness/anything", None),
        ]:
            status, error = call(emu, method, path, body)
            assert status == 403, (method, path)
            assert error["message"] == (
                "state-changing admin calls need the header 'X-Harness-Admin: 1'"
            )
            wrong = call(emu, method, path, body, {ADMIN_HEADER: "yes"})[0]
            assert wrong == 403
        assert things(emu) == 1  # nothing was reset
        assert emu.core.settings.fault_rate == 0.0  # nor configured
        # Reading needs no header.
        assert call(emu, "GET", "/_harness/health") == (200, {"status": "ok"})
        assert call(emu, "POST", "/_harness/reset", b"", ADMIN) == (200, {"reset": True})
        assert things(emu) == 0

    def test_a_foreign_origin_is_refused_even_with_the_header(self, emu: EmulatorThread) -> None:
        call(emu, "POST", "/things/kept", b"{}", {"Authorization": IOT})
        for origin in ("http://evil.example", "null", f"http://evil.example:{emu.emulator.port}"):
            status, error = call(emu, "POST", "/_harness/reset", b"", {**ADMIN, "Origin": origin})
            assert status == 403
            assert error["message"] == f"admin calls from origin {origin!r} are refused"
            assert call(emu, "GET", "/_harness/stats", None, {"Origin": origin})[0] == 403
        assert things(emu) == 1
        # A page served from the emulator's own origin may (loopback names are the same host).
        for host in ("127.0.0.1", "localhost", "[::1]"):
            origin = f"http://{host}:{emu.emulator.port}"
            status, _ = call(emu, "POST", "/_harness/reset", b"", {**ADMIN, "Origin": origin})
            assert status == 200
        assert call(emu, "POST", "/_harness/reset", b"", {"Origin": origin})[0] == 403

    @pytest.mark.anyio
    async def test_the_aiohttp_server_is_guarded_the_same(self) -> None:
        async with Emulator(port=0, http="aiohttp") as emu, aiohttp.ClientSession() as session:
            async with session.post(f"{emu.url}/_harness/reset") as resp:
                assert resp.status == 403
            async with session.post(
                f"{emu.url}/_harness/reset", headers={**ADMIN, "Origin": "http://evil.example"}
            ) as resp:
                assert resp.status == 403
            async with session.post(f"{emu.url}/_harness/reset", headers=ADMIN) as resp:
                assert resp.status == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------------ config validation
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"latency_ms": "inf"},
            "latency_ms=inf: expected a finite number, at least 0 and at most 60000",
        ),
        ({"latency_ms": "5:inf"}, "latency_ms=inf: expected a finite number"),
        ({"latency_ms": "nan"}, "latency_ms=nan: expected a finite number"),
        ({"latency_ms": 60001}, "latency_ms=60001: expected a finite number"),
        ({"latency_ms": -1}, "latency_ms=-1: expected a finite number"),
        ({"latency_ms": [5, "inf"]}, "latency_ms='inf': expected a number"),
        ({"latency_ms": [9, 3]}, "latency_ms=(9.0, 3.0): expected MIN <= MAX"),
        ({"latency_ms": True}, "latency True: expected MS or MIN:MAX milliseconds"),
        ({"latency_ms": {"a": 1}}, "latency {'a': 1}: expected MS or MIN:MAX milliseconds"),
        ({"fault_rate": 1.5}, "fault_rate=1.5: expected a finite number, at least 0 and at most 1"),
        ({"fault_rate": -0.1}, "fault_rate=-0.1: expected a finite number"),
        ({"fault_rate": True}, "fault_rate=True: expected a number"),
        ({"fault_rate": "0.5"}, "fault_rate='0.5': expected a number"),
        ({"fault_rate": None}, "fault_rate=None: expected a number"),
        ({"idempotency_ttl": 0}, "idempotency_ttl=0: expected a finite number, more than 0"),
        ({"idempotency_ttl": 10**9}, "idempotency_ttl=1000000000: expected a finite number"),
        ({"proton_registration_delay": 3601}, "proton_registration_delay=3601: expected a"),
        ({"proton_registration_delay": [1]}, "proton_registration_delay=[1]: expected a number"),
        ({"throttle": 1}, "throttle=1: expected 'aws' or 'off'"),
        ({"check_responses": 1}, "check_responses=1: expected true or false"),
        ({"seed": 1}, "unknown setting(s) ['seed']"),
    ],
)
def test_every_config_value_is_checked(
    emu: EmulatorThread, change: dict[str, Any], message: str
) -> None:
    before = emu.core.settings
    status, error = call(emu, "PUT", "/_harness/config", json.dumps(change).encode(), ADMIN)
    assert status == 400
    assert message in error["message"]
    assert emu.core.settings == before
    # And the emulator goes on answering at once, without a 500.
    start = time.monotonic()
    status, _ = call(emu, "POST", "/things/fine", b"{}", {"Authorization": IOT})
    assert status == 200 and time.monotonic() - start < 5


@pytest.mark.parametrize(
    "body", [b"1e999", b"[1]", b'{"fault_rate": 1e999}', b"{not json", b'"inf"']
)
def test_config_bodies_that_are_not_an_object_of_numbers(emu: EmulatorThread, body: bytes) -> None:
    status, error = call(emu, "PUT", "/_harness/config", body, ADMIN)
    assert status == 400 and error["message"]


def test_valid_config_values_within_the_bounds(emu: EmulatorThread) -> None:
    change = {
        "latency_ms": [0, 60000],
        "fault_rate": 1,
        "idempotency_ttl": 7 * 24 * 3600,
        "proton_registration_delay": 0,
        "check_responses": True,
    }
    status, settings = call(emu, "PUT", "/_harness/config", json.dumps(change).encode(), ADMIN)
    assert status == 200
    assert settings["latency_ms"] == [0.0, 60000.0] and settings["fault_rate"] == 1.0
    assert isinstance(emu.core.settings.fault_rate, float)
    status, settings = call(emu, "PUT", "/_harness/config", b'{"latency_ms": "2:3"}', ADMIN)
    assert settings["latency_ms"] == [2.0, 3.0]
    emu.call(lambda: emu.core.configure({"idempotency_ttl": 8 * 3600}))  # not reset per test


def test_settings_made_in_python_are_checked_too() -> None:
    with pytest.raises(InvalidArgument, match="fault_rate=nan"):
        EmulatorSettings(fault_rate=float("nan"))
    with pytest.raises(InvalidArgument, match="latency_ms=inf"):
        EmulatorSettings(latency_ms=(0.0, float("inf")))
    with pytest.raises(InvalidArgument, match="seed=True"):
        EmulatorSettings(seed=True)


# ------------------------------------------------------------- tokens of unfinished requests
def deployment(token: str) -> bytes:
    body = {
        "targetArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/tok",
        "components": {"c": {"componentVersion": "1.0.0"}},
        "clientToken": token,
    }
    return json.dumps(body).encode()


def send_deployment(port: int, token: str) -> socket.socket:
    body = deployment(token)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST /greengrass/v2/deployments HTTP/1.1\r\nHost: x\r\nAuthorization: {GG}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def deployments(emu: EmulatorThread) -> int:
    return int(
        call(emu, "GET", "/_harness/stats")[1]["resources"]
        .get("greengrassv2", {})
        .get("Deployment", 0)
    )


def test_a_dropped_request_completes_as_on_aws_and_its_retry_waits_for_it(
    emu: EmulatorThread,
) -> None:
    emu.call(lambda: emu.core.configure({"latency_ms": 1500}))
    sock = send_deployment(emu.emulator.port, "tok-dropped")
    assert wait_for(lambda: emu.call(lambda: len(emu.core.idempotency)) == 1)  # in flight
    # The client gives up: the connection is reset (linger 0) while the request sleeps.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    emu.call(lambda: emu.core.configure({"latency_ms": 0}))
    headers = {"Authorization": GG, "Content-Type": "application/json"}
    # A retry while the first request still runs: in progress, as Greengrass answers.
    status, answer = call(
        emu, "POST", "/greengrass/v2/deployments", deployment("tok-dropped"), headers
    )
    assert status == 400 and "in progress" in str(answer).lower(), (status, answer)
    # The first request completes (nobody reads its answer); a retry then gets its replay.
    assert wait_for(lambda: deployments(emu) == 1, timeout=20)
    status, made = call(
        emu, "POST", "/greengrass/v2/deployments", deployment("tok-dropped"), headers
    )
    again = call(emu, "POST", "/greengrass/v2/deployments", deployment("tok-dropped"), headers)
    assert status == 201 and again == (201, made)
    assert deployments(emu) == 1


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_stopping_the_emulator_frees_tokens_in_flight() -> None:
    with EmulatorThread(settings=EmulatorSettings(latency_ms=(30_000.0, 30_000.0))) as emu:
        sock = send_deployment(emu.emulator.port, "tok-stop")
        assert wait_for(lambda: emu.call(lambda: len(emu.core.idempotency)) == 1)
        core = emu.core
    try:
        assert len(core.idempotency) == 0
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503 ")
    finally:
        sock.close()


def test_a_failure_after_the_handler_frees_the_token(
    emu: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = emu.core._run_handler

    def broken(*args: Any) -> Any:
        raise RuntimeError("serializer bug")

    monkeypatch.setattr(emu.core, "_run_handler", broken)
    headers = {"Authorization": GG, "Content-Type": "application/json"}
    status, error = call(emu, "POST", "/greengrass/v2/deployments", deployment("tok-bug"), headers)
    assert status == 500 and error["message"] == "internal error of the emulator"
    assert emu.call(lambda: len(emu.core.idempotency)) == 0
    monkeypatch.setattr(emu.core, "_run_handler", real)
    status, _ = call(emu, "POST", "/greengrass/v2/deployments", deployment("tok-bug"), headers)
    assert status == 201
