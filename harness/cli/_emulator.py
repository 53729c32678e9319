"""``harness emulator``: run the model-driven emulator in the foreground."""

from __future__ import annotations

import click

from harness.cli._embedded import follow_parent
from harness.emulator import EmulatorSettings, parse_latency, serve
from harness.errors import InvalidArgument

__all__ = ["emulator"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=4566, show_default=True, type=int, help="Port (0 picks a free one)."
)
@click.option(
    "--throttle",
    type=click.Choice(["aws", "off"]),
    default="off",
    show_default=True,
    help="aws: enforce the quotas in specs/quotas.yaml per (account, region, operation).",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of requests answered with InternalServerException 500.",
)
@click.option(
    "--latency-ms",
    default="0",
    show_default=True,
    metavar="MIN[:MAX]",
    help="Extra delay per request, uniform in [MIN, MAX] milliseconds.",
)
@click.option("--seed", type=int, default=None, help="Seed for fault and latency draws.")
@click.option(
    "--proton-delay",
    default=0.5,
    show_default=True,
    type=float,
    help="Seconds a Proton template version stays REGISTRATION_IN_PROGRESS.",
)
# The embedded emulator's child side (harness/cli/_embedded.py): stop when the parent is gone.
@click.option("--exit-with-parent", is_flag=True, hidden=True)
def emulator(
    host: str,
    port: int,
    throttle: str,
    fault_rate: float,
    latency_ms: str,
    seed: int | None,
    proton_delay: float,
    exit_with_parent: bool,
) -> None:
    """Serve IoT, Greengrass V2, IoT Wireless, Proton and managed integrations on one port.

    Point any SDK at it with an endpoint URL. Prints "listening on http://HOST:PORT" once
    ready; SIGINT or SIGTERM stops it. Settings can change at run time: PUT /_harness/config.
    """
    if port < 0 or port > 65535:
        raise InvalidArgument(f"--port {port}: expected 0..65535")
    if exit_with_parent:
        follow_parent()
    settings = EmulatorSettings(
        throttle="aws" if throttle == "aws" else "off",
        fault_rate=fault_rate,
        latency_ms=parse_latency(latency_ms),
        seed=seed,
        proton_registration_delay=proton_delay,
    )
    serve(host, port, settings, lambda line: click.echo(line, nl=True))
