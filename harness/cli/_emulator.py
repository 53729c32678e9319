"""``harness emulator``: run the model-driven emulator in the foreground."""

from __future__ import annotations

import math

import click
from click.core import ParameterSource

from harness.cli._embedded import follow_parent
from harness.emulator import EmulatorSettings, Limits, parse_latency, serve
from harness.errors import InvalidArgument

__all__ = ["emulator"]

DEFAULT_LIMITS = Limits()
_FLAGS = {"proton_registration_delay": "proton-delay", "latency": "latency-ms"}


def _flag_message(message: str) -> str:
    """``"header_timeout=inf: expected ..."`` as ``"--header-timeout inf: expected ..."``.

    The settings name their fields (as the admin API takes them); the user typed the flag.
    """
    name, sep, rest = message.partition("=")
    if not sep or " " in name:
        name, sep, rest = message.partition(" ")
    flag = _FLAGS.get(name, name.replace("_", "-"))
    return f"--{flag} {rest}" if sep and flag.replace("-", "").isalpha() else message


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
@click.option(
    "--max-connections",
    type=int,
    default=None,
    help="Connections open at once (default: the descriptor limit minus 64, at most 4096).",
)
@click.option(
    "--header-timeout",
    type=float,
    default=DEFAULT_LIMITS.header_timeout,
    show_default=True,
    help="Seconds a request head may take to arrive; also the longest pause within a body.",
)
@click.option(
    "--idle-timeout",
    type=float,
    default=DEFAULT_LIMITS.idle_timeout,
    show_default=True,
    help="Seconds an idle kept-alive connection stays open.",
)
@click.option(
    "--max-body",
    type=int,
    default=DEFAULT_LIMITS.max_body,
    show_default=True,
    help="Largest request body in bytes (larger: 413).",
)
@click.option(
    "--state-dir",
    default=None,
    metavar="DIR",
    help="Keep the state in DIR: load it at start, save it periodically and on exit "
    "(created 0700 if missing); named snapshots go there too.",
)
@click.option(
    "--snapshot-interval",
    default=30.0,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="With --state-dir: seconds between saves while the state changes (0: only on exit).",
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
    max_connections: int | None,
    header_timeout: float,
    idle_timeout: float,
    max_body: int,
    state_dir: str | None,
    snapshot_interval: float,
    exit_with_parent: bool,
) -> None:
    """Serve IoT, Greengrass V2, IoT Wireless, Proton and managed integrations on one port.

    Point any SDK at it with an endpoint URL. Prints "listening on http://HOST:PORT" once
    ready; SIGINT or SIGTERM stops it. Settings can change at run time: PUT /_harness/config
    with the header "X-Harness-Admin: 1".

    With --state-dir the whole state (resources, client tokens, pagination tokens, counters,
    settings) survives a restart; the flags given on the command line win over saved settings.
    """
    if port < 0 or port > 65535:
        raise InvalidArgument(f"--port {port}: expected 0..65535")
    if not math.isfinite(snapshot_interval) or snapshot_interval < 0:
        raise InvalidArgument(
            f"--snapshot-interval {snapshot_interval}: expected a finite number of seconds >= 0"
        )
    if state_dir is not None and not state_dir.strip():
        raise InvalidArgument("--state-dir: expected a directory path, got an empty string")
    if exit_with_parent:
        follow_parent()
    try:
        settings = EmulatorSettings(
            throttle="aws" if throttle == "aws" else "off",
            fault_rate=fault_rate,
            latency_ms=parse_latency(latency_ms),
            seed=seed,
            proton_registration_delay=proton_delay,
        )
        limits = Limits(
            header_timeout=header_timeout,
            idle_timeout=idle_timeout,
            max_body=max_body,
            **({} if max_connections is None else {"max_connections": max_connections}),
        )
    except InvalidArgument as exc:
        raise InvalidArgument(_flag_message(str(exc))) from None
    ctx = click.get_current_context()
    # Settings given on the command line win over those a loaded state was saved with.
    flags = {
        "throttle": "throttle",
        "fault_rate": "fault_rate",
        "latency_ms": "latency_ms",
        "seed": "seed",
        "proton_delay": "proton_registration_delay",
    }
    pinned = [
        setting
        for flag, setting in flags.items()
        if ctx.get_parameter_source(flag) not in (ParameterSource.DEFAULT, None)
    ]
    serve(
        host,
        port,
        settings,
        lambda line: click.echo(line, nl=True),
        limits,
        state_dir=state_dir,
        snapshot_interval=snapshot_interval,
        pinned_settings=pinned,
        warn=lambda line: click.echo(f"warning: {line}", err=True),
    )
