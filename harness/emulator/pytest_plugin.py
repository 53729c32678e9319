"""pytest fixtures for the emulator: ``pytest_plugins = ["harness.emulator.pytest_plugin"]``.

* ``harness_emulator``: an :class:`~harness.emulator.EmulatorThread` for the whole session
  (responses are checked against their output shapes), reset before each test that uses it;
* ``harness_endpoint``: its URL;
* ``aws_client``: a factory ``aws_client("iot")`` of boto3 clients pointed at it, with retries
  off so that tests see every answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from harness.emulator._server import EmulatorThread
from harness.emulator._settings import EmulatorSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["aws_client", "harness_emulator", "harness_endpoint"]


@pytest.fixture(scope="session")
def _harness_emulator_session() -> Iterator[EmulatorThread]:
    with EmulatorThread(settings=EmulatorSettings(check_responses=True, seed=1)) as emu:
        yield emu


@pytest.fixture
def harness_emulator(_harness_emulator_session: EmulatorThread) -> Iterator[EmulatorThread]:
    """The session's emulator, with fresh state and default settings for this test."""
    emu = _harness_emulator_session
    emu.call(emu.core.reset)
    emu.call(
        lambda: emu.core.configure(
            {
                "throttle": "off",
                "fault_rate": 0.0,
                "latency_ms": [0, 0],
                "proton_registration_delay": 0.5,
            }
        )
    )
    yield emu
    failures = list(emu.core.conformance_failures)
    assert not failures, f"the emulator answered with non-conforming responses: {failures}"


@pytest.fixture
def harness_endpoint(harness_emulator: EmulatorThread) -> str:
    """The endpoint URL of the session's emulator."""
    return harness_emulator.url


@pytest.fixture(scope="session")
def _harness_boto3_clients() -> dict[tuple[Any, ...], Any]:
    # Building a boto3 client loads the service model (0.1-0.5 s for IoT): build each once.
    return {}


@pytest.fixture
def aws_client(
    harness_endpoint: str, _harness_boto3_clients: dict[tuple[Any, ...], Any]
) -> Callable[..., Any]:
    """Build boto3 clients for the emulator: ``aws_client("greengrassv2")``."""
    import boto3
    from botocore.config import Config

    def make(service: str, **config: Any) -> Any:
        key = (service, harness_endpoint, tuple(sorted(config.items())))
        client = _harness_boto3_clients.get(key)
        if client is None:
            session = boto3.session.Session(
                aws_access_key_id="AKIDEXAMPLE",
                aws_secret_access_key="secret",
                region_name="us-east-1",
            )
            client = session.client(
                service,
                endpoint_url=harness_endpoint,
                config=Config(retries={"max_attempts": 0, "mode": "standard"}, **config),
            )
            _harness_boto3_clients[key] = client
        return client

    return make
