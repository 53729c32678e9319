"""The endpoint probe (one TCP connect, bounded) and the SDK session that ignores AWS_PROFILE."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import TYPE_CHECKING

import anyio
import pytest
from botocore.exceptions import ProfileNotFound

from harness.errors import InvalidArgument
from harness.transport import FastTransport, probe_endpoint, sdk_session

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def listening() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


@contextlib.contextmanager
def saturated() -> Iterator[int]:
    """A port whose accept queue is full: new connections get no answer at all."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            time.sleep(0.2)
            yield port
        finally:
            for filler in fillers:
                filler.close()


class TestProbe:
    def test_a_listening_endpoint_answers(self) -> None:
        with listening() as server:
            url = f"http://127.0.0.1:{server.getsockname()[1]}/some/path"
            assert anyio.run(probe_endpoint, url) is None

    def test_a_closed_port_is_refused(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # bound, not listening
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            assert anyio.run(probe_endpoint, url) == "connection refused"

    def test_no_answer_is_bounded(self) -> None:
        with saturated() as port:
            started = time.monotonic()
            reason = anyio.run(probe_endpoint, f"http://127.0.0.1:{port}", 1.0)
            elapsed = time.monotonic() - started
        assert reason == "no answer within 1 s"
        assert elapsed < 10

    def test_a_proxy_is_what_gets_probed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with listening() as proxy, socket.socket() as dead:
            dead.bind(("127.0.0.1", 0))
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            # The endpoint itself refuses; the proxy the SDK would go through answers.
            url = f"http://127.0.0.1:{dead.getsockname()[1]}"
            assert anyio.run(probe_endpoint, url) is None

    def test_the_fast_transport_refuses_an_environment_proxy_by_name(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def resolve() -> str:
            async with FastTransport(
                endpoint_url="http://127.0.0.1:9", region="us-east-1", credentials=("a", "b")
            ) as transport:
                return await transport.endpoint("iot")

        with pytest.raises(InvalidArgument, match="FastTransport does not support proxies"):
            anyio.run(resolve)


class TestSession:
    def test_explicit_credentials_ignore_aws_profile(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
        with pytest.raises(ProfileNotFound):
            sdk_session(None, None).get_scoped_config()
        assert sdk_session(None, ("AKID", "secret")).get_scoped_config() is not None

    def test_a_transport_with_explicit_credentials_reaches_its_endpoint(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_PROFILE", "no-such-profile")

        async def resolve() -> tuple[str, bool]:
            async with FastTransport(
                endpoint_url="http://127.0.0.1:9", region="eu-west-1", credentials=("a", "b")
            ) as transport:
                return await transport.endpoint("iot"), await transport.check_credentials()

        assert anyio.run(resolve) == ("http://127.0.0.1:9", True)
