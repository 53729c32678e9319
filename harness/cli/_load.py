"""``harness load``: an open-model load test of one operation or a scenario file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import click
import orjson
import yaml
from rich.console import Console
from rich.table import Table

from harness.cli._rates import RATE
from harness.cli._target import Target, check_target, endpoint_options, open_target
from harness.errors import InvalidArgument
from harness.load import (
    LoadProgress,
    LoadResult,
    Scenario,
    ThresholdResult,
    TransportOptions,
    evaluate,
    load_scenario,
    parse_scenario,
    run_load,
)
from harness.reporting import load_section, write_html_report, write_json

__all__ = ["load"]

EXIT_FAILED = 1
_PROGRESS_EVERY = 5


def _params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if params_file is not None:
        try:
            loaded = yaml.safe_load(params_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidArgument(f"--params {params_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidArgument(f"--params {params_file}: expected a mapping of parameters")
        params.update(loaded)
    for pair in pairs:
        name, _, text = pair.partition("=")
        if not name:
            raise InvalidArgument(f"parameter {pair!r}: expected NAME=VALUE")
        try:
            params[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            params[name] = text  # plain text is a string; JSON is allowed for numbers and lists
    return params


def _scenario(
    args: tuple[str, ...],
    operation: str | None,
    params_file: Path | None,
    overrides: dict[str, Any],
) -> Any:
    files = [a for a in args if "=" not in a]
    pairs = [a for a in args if "=" in a]
    if len(files) > 1:
        raise InvalidArgument(f"one scenario file at most, got {', '.join(files)}")
    if files:
        if operation or pairs or params_file:
            raise InvalidArgument("a scenario file sets its operations: drop --operation/params")
        return load_scenario(files[0], overrides)
    if not operation:
        raise InvalidArgument("give a SCENARIO file or --operation SERVICE:OPERATION")
    entry = {"operation": operation, "params": _params(pairs, params_file)}
    return parse_scenario({"operations": [entry], **overrides}, f"--operation {operation}")


async def _check(options: TransportOptions, target: Target, scenario: Scenario) -> str:
    # The workers build their own transports; this one only checks the target before any of
    # them starts, and names the endpoints for the banner.
    async with options.build(1) as transport:
        calls = [(op.service, scenario.region) for op in scenario.operations]
        return await check_target(transport, target, calls)


def _table(result: LoadResult) -> Table:
    table = Table(title=f"{result.scenario}: {result.elapsed:.1f} s", title_justify="left")
    headers = ["operation", "latency", "calls", "failed", "p50", "p90", "p99", "p99.9", "p99.99"]
    for header in [*headers, "max (ms)"]:
        table.add_column(header, justify="left" if header in headers[:2] else "right")
    for name in [*result.names, "total"]:
        op = result.total if name == "total" else result.operations[name]
        for label, hist in (("corrected", op.corrected), ("raw", op.stats.call_latency)):
            s = hist.summary()
            figures = (s.p50, s.p90, s.p99, s.p999, s.p9999, s.max)
            counts = (
                (str(op.stats.calls), str(op.stats.failures)) if label == "corrected" else ("", "")
            )
            table.add_row(
                name if label == "corrected" else "",
                label,
                *counts,
                *[f"{v * 1000:.1f}" for v in figures],
            )
    return table


def _report(console: Console, result: LoadResult, checks: list[ThresholdResult]) -> None:
    console.print(_table(result))
    console.print(
        f"rate: target {result.target_rate:.1f}/s, achieved {result.achieved_rate:.1f}/s "
        f"({result.rate_ratio:.1%}); sent {result.sent} of {result.scheduled}; late starts "
        f"{result.late_starts} (> {result.late_after * 1000:g} ms, max "
        f"{result.lateness.max * 1000:.1f} ms)"
    )
    errors = result.total.stats.errors
    if errors:
        console.print("errors: " + ", ".join(f"{c}={n}" for c, n in sorted(errors.items())))
    for warning in result.warnings():
        console.print(f"[bold yellow]warning:[/] {warning}")
    for check in checks:
        mark = "[green]pass[/]" if check.ok else "[bold red]FAIL[/]"
        console.print(f"threshold {mark} {check.describe()}")


@click.command()
@click.argument("args", nargs=-1, metavar="[SCENARIO] [NAME=VALUE ...]")
@click.option(
    "--operation",
    "-o",
    metavar="SERVICE:OPERATION",
    help="One operation to load (also service.Operation, Operation, python_name).",
)
@click.option(
    "--params",
    "params_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML/JSON mapping of the operation's parameters ({n}, {uuid}, {worker} placeholders).",
)
@click.option("--rate", type=RATE, help="Target arrival rate, requests/s (all operations).")
@click.option("--duration", help="Run length, ramp included: 30s, 2m, 500ms.")
@click.option("--ramp", help="DURATION (from 0 to the rate) or FROM:TO:DURATION (100:500:30s).")
@click.option("--connections", type=click.IntRange(1, 65536), help="Requests on the wire [32].")
@click.option("--max-in-flight", type=click.IntRange(1), help="Due but unfinished cap [1024].")
@click.option("--retries", type=click.IntRange(0, 20), help="Retries per call [0: measure].")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="[OP:]METRIC<VALUE",
    help="Pass/fail gate, e.g. p99<200ms, CreateThing:max<1s, errors<0.1%, rate>=95%.",
)
@endpoint_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hdr", "hdr_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True, help="No progress lines while running.")
def load(
    args: tuple[str, ...],
    operation: str | None,
    params_file: Path | None,
    rate: float | None,
    duration: str | None,
    ramp: str | None,
    connections: int | None,
    max_in_flight: int | None,
    retries: int | None,
    workers: int,
    thresholds: tuple[str, ...],
    endpoint: str | None,
    region: str | None,
    profile: str | None,
    emulator_throttle: str,
    transport_kind: str,
    json_path: Path | None,
    html_path: Path | None,
    hdr_path: Path | None,
    no_progress: bool,
) -> None:
    """Send requests at a target rate (open model) and measure latency without coordinated
    omission: from each request's intended send time (corrected) and from its actual send (raw).

    Exit status: 0 when every threshold held (or none was given), 1 when one broke, 2 for bad
    usage (a malformed threshold, an invalid scenario).
    """
    given = {
        "rate": rate,
        "duration": duration,
        "ramp": ramp,
        "connections": connections,
        "max_in_flight": max_in_flight,
        "retries": retries,
        "thresholds": list(thresholds),
        "region": region,  # as every other option, the flag wins over the scenario's
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    scenario = _scenario(args, operation, params_file, overrides)
    console = Console(width=None if sys.stdout.isatty() else 160, highlight=False)
    with open_target(
        endpoint,
        services={op.service for op in scenario.operations},
        region=region,
        profile=profile,
        emulator_throttle=emulator_throttle,
        file_region=scenario.region,
    ) as target:
        options = TransportOptions(
            target.url, target.region, target.profile, target.credentials, kind=transport_kind
        )
        label = anyio.run(_check, options, target, scenario, backend="asyncio")
        console.print(
            f"load {scenario.name} against {label}: {scenario.profile.describe()}, "
            f"{scenario.connections} connections, {workers} worker(s), {transport_kind} transport"
        )

        def progress(p: LoadProgress) -> None:
            if not no_progress and round(p.elapsed) % _PROGRESS_EVERY == 0:
                console.print(
                    f"  {p.elapsed:5.0f} s: sent {p.sent}/{scenario.profile.total} "
                    f"completed {p.completed} errors {p.errors} on the wire {p.on_wire} "
                    f"waiting {p.waiting}"
                )

        result = run_load(scenario, options, workers=workers, progress=progress)
    checks = evaluate(scenario.thresholds, result)
    _report(console, result, checks)
    if json_path is not None:
        document = result.to_json()
        document["endpoint"] = label
        document["thresholds"] = [c.to_json() for c in checks]
        write_json(json_path, document)
        console.print(f"JSON written to {json_path}")
    if hdr_path is not None:
        result.write_hdr(hdr_path)
        console.print(f"HdrHistogram log written to {hdr_path}")
    if html_path is not None:
        section = load_section(result, checks, endpoint=label)
        write_html_report(html_path, f"harness load: {scenario.name}", [section])
        console.print(f"HTML report written to {html_path}")
    if not all(c.ok for c in checks):
        sys.exit(EXIT_FAILED)
