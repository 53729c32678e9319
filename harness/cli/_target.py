"""Where a command sends its calls: the endpoint (embedded, AWS, a URL) and the transport."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import click

from harness.cli._embedded import embedded_emulator
from harness.errors import InvalidArgument
from harness.transport import AioBotocoreTransport, FastTransport

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["endpoint_options", "make_transport", "resolve_endpoint"]

_EMULATOR_CREDENTIALS = ("AKIDEXAMPLE", "harness-emulator")


@contextlib.contextmanager
def resolve_endpoint(
    endpoint: str, emulator_throttle: str, *, state_dir: Path | None = None
) -> Iterator[tuple[str | None, str]]:
    """``(endpoint URL or None for AWS, label)`` for ``embedded``, ``aws`` or a URL.

    :param state_dir: where the embedded emulator keeps its state (for ``run --resume``)
    """
    if endpoint == "embedded":
        with embedded_emulator(emulator_throttle, state_dir=state_dir) as url:
            yield url, f"embedded emulator {url}"
    elif endpoint == "aws":
        yield None, "aws"
    elif endpoint.startswith(("http://", "https://")):
        yield endpoint, endpoint
    else:
        raise InvalidArgument(f"--endpoint {endpoint!r}: expected embedded, aws or an http(s) URL")


def make_transport(
    url: str | None, region: str | None, profile: str | None, pool: int, kind: str = "fast"
) -> AioBotocoreTransport | FastTransport:
    credentials = None
    if url is not None and profile is None and not os.environ.get("AWS_ACCESS_KEY_ID"):
        credentials = _EMULATOR_CREDENTIALS  # an emulator needs some credentials, any will do
    # FastTransport sends what aiobotocore sends (tests/transport/test_fast_equivalence.py) at
    # a third of the CPU per call; aiobotocore stays for what it refuses (streaming, proxies...).
    cls = FastTransport if kind == "fast" else AioBotocoreTransport
    return cls(
        endpoint_url=url,
        region=region,
        profile=profile,
        credentials=credentials,
        max_connections=pool,
    )


def endpoint_options(fn: Any) -> Any:
    """The options every command that talks to a target shares."""
    for option in reversed(
        [
            click.option(
                "--endpoint",
                default="embedded",
                show_default=True,
                help="embedded (start the emulator for this run), aws, or a URL.",
            ),
            click.option(
                "--region",
                default=None,
                help="Region (default: the standard chain, else us-east-1).",
            ),
            click.option("--profile", default=None, help="A named profile for --endpoint aws."),
            click.option(
                "--emulator-throttle",
                type=click.Choice(["off", "aws"]),
                default="off",
                show_default=True,
                help="Throttling of the embedded emulator.",
            ),
            click.option(
                "--transport",
                "transport_kind",
                type=click.Choice(["fast", "aiobotocore"]),
                default="fast",
                show_default=True,
                help="fast: botocore's requests minus its per-call overhead; aiobotocore: SDK.",
            ),
        ]
    ):
        fn = option(fn)
    return fn
