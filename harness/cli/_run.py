"""``harness run`` and ``harness list``: bulk jobs and listings through the engine."""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import click
import orjson

from harness.cli._target import endpoint_options, make_transport, resolve_endpoint
from harness.engine import (
    MAX_CONCURRENCY,
    Engine,
    Job,
    Journal,
    Limits,
    load_job,
    parse_job,
    read_journal,
)
from harness.errors import InvalidArgument, JobError
from harness.reporting import ConsoleReporter, stats_section, write_html_report, write_json
from harness.throttle import BucketRegistry

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["list_", "run"]

EXIT_FAILED = 1
EXIT_USAGE = 2


def _parse_rates(values: tuple[str, ...], job: Job) -> list[tuple[str | None, str, float]]:
    rates: list[tuple[str | None, str, float]] = []
    known = {(s.service, s.operation.name) for s in job.steps}
    for value in values:
        name, sep, tps = value.partition("=")
        if not sep:
            raise InvalidArgument(
                f"--rate {value!r}: expected OPERATION=TPS or SERVICE.OPERATION=TPS"
            )
        service, _, operation = name.rpartition(".")
        matches = [k for k in known if k[1] == operation and (not service or k[0] == service)]
        if not matches:
            raise InvalidArgument(f"--rate {value!r}: no step of this job calls {name}")
        try:
            rate = float(tps)
        except ValueError:
            raise InvalidArgument(f"--rate {value!r}: {tps!r} is not a number") from None
        if rate <= 0:
            raise InvalidArgument(f"--rate {value!r}: the rate must be positive")
        rates.append((service or None, operation, rate))
    return rates


def _journal_path(job: Job, journal: Path | None, resume: bool) -> Path:
    if journal is not None:
        if journal.exists() and journal.stat().st_size and not resume:
            raise InvalidArgument(
                f"journal {journal} exists: pass --resume to continue that run, or another path"
            )
        if resume and not journal.exists():
            raise InvalidArgument(f"--resume: journal {journal} does not exist")
        return journal
    runs = Path(".harness") / "runs"
    if resume:
        earlier = sorted(runs.glob(f"{job.name}-*.jsonl"))
        if not earlier:
            raise InvalidArgument(
                f"--resume: no journal of job {job.name!r} in {runs}; use --journal"
            )
        return earlier[-1]
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return runs / f"{job.name}-{stamp}-{os.getpid()}.jsonl"


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False, path_type=Path))
@endpoint_options
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Journal file (default: .harness/runs/JOB-TIMESTAMP.jsonl).",
)
@click.option("--resume", is_flag=True, help="Continue the run recorded in the journal.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, MAX_CONCURRENCY),
    default=None,
    help="Calls in flight at once (default: the job's, else 64).",
)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    metavar="OPERATION=TPS",
    help="Rate for an operation, e.g. CreateThing=50 (repeatable).",
)
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the summary as JSON here.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an HTML report (tables and latency plots per operation) here.",
)
@click.option("--dry-run", is_flag=True, help="Render and validate every item, send nothing.")
@click.option("--no-progress", is_flag=True, help="Plain progress lines, even on a terminal.")
def run(
    job_file: Path,
    endpoint: str,
    region: str | None,
    profile: str | None,
    emulator_throttle: str,
    transport_kind: str,
    journal: Path | None,
    resume: bool,
    concurrency: int | None,
    rates: tuple[str, ...],
    summary_path: Path | None,
    html_path: Path | None,
    dry_run: bool,
    no_progress: bool,
) -> None:
    """Run a bulk job file against a target.

    Exit status: 0 when every item succeeded, 1 when some failed (listed in the summary),
    2 for a bad job file or usage (nothing is sent then).
    """
    job = load_job(job_file, limits=Limits.from_env(os.environ))
    overrides = _parse_rates(rates, job)
    reporter = ConsoleReporter(progress=not no_progress)
    if dry_run:
        engine = Engine(job, make_transport("http://127.0.0.1:9", region, None, 1), sink=reporter)
        anyio.run(functools.partial(engine.preflight, max_items=job.limits.dry_run_items))
        reporter.print(f"dry run: {job.name} is valid; nothing was sent")
        return
    path = _journal_path(job, journal, resume)
    feeding = frozenset(s.source.upstream for s in job.steps if s.source.upstream)
    state = read_journal(path, keep_outputs=feeding) if resume else None
    if state is not None and state.job not in (None, job.name):
        raise JobError(f"journal {path} belongs to job {state.job!r}, not {job.name!r}")
    with resolve_endpoint(endpoint, emulator_throttle) as (url, label):
        summary = anyio.run(
            _run_job,
            job,
            url,
            label,
            region,
            profile,
            concurrency,
            overrides,
            path,
            state,
            reporter,
            transport_kind,
            # Plain asyncio: uvloop's clock advances once per loop iteration in whole
            # milliseconds, too coarse for latency percentiles, and it does not make
            # aiobotocore any faster (see the baselines).
            backend="asyncio",
        )
    if summary_path is not None:
        write_json(summary_path, summary.to_json())
        reporter.print(f"summary written to {summary_path}")
    if html_path is not None:
        facts = {"endpoint": label, "elapsed": f"{summary.elapsed:.2f} s"}
        section = stats_section(f"Run: {summary.job}", summary.stats, facts=facts)
        write_html_report(html_path, f"harness run: {summary.job}", [section])
        reporter.print(f"HTML report written to {html_path}")
    if summary.exit_code:
        sys.exit(EXIT_FAILED)


async def _run_job(
    job: Job,
    url: str | None,
    label: str,
    region: str | None,
    profile: str | None,
    concurrency: int | None,
    overrides: list[tuple[str | None, str, float]],
    path: Path,
    state: Any,
    reporter: ConsoleReporter,
    transport_kind: str = "fast",
) -> Any:
    registry = BucketRegistry()
    for service, operation, rate in overrides:
        registry.override(service, operation, rate)
    limit = concurrency or job.concurrency
    async with make_transport(
        url, region or job.region, profile, limit, transport_kind
    ) as transport:
        engine = Engine(
            job,
            transport,
            sink=reporter,
            registry=registry,
            resume_state=state,
            concurrency=limit,
            endpoint=label,
        )
        # The journal is created once the preflight passed: a job refused at preflight leaves
        # no journal behind (which would demand --resume of the corrected job's next run).
        await engine.preflight()
        try:
            engine.journal = Journal(path, job.name)
        except OSError as exc:
            raise InvalidArgument(f"cannot write journal {path}: {exc.strerror}") from None
        try:
            return await engine.run()
        finally:
            engine.journal.close()


def _param_sets(params: tuple[str, ...], params_file: Path | None) -> Iterator[dict[str, Any]]:
    base: dict[str, Any] = {}
    for value in params:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"--param {value!r}: expected NAME=VALUE")
        try:
            base[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            base[name] = text  # plain text is a string; JSON is allowed for numbers and lists
    if params_file is None:
        yield base
        return
    with params_file.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidArgument(f"{params_file}:{number}: invalid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise InvalidArgument(f"{params_file}:{number}: each line must be a JSON object")
            yield {**base, **row}


@click.command("list")
@click.argument("service")
@click.argument("operation")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A request parameter (repeatable); VALUE may be JSON.",
)
@click.option(
    "--params-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="JSONL: one parameter set per line, listed concurrently.",
)
@endpoint_options
@click.option(
    "--out",
    type=click.File("wb"),
    default="-",
    show_default=True,
    help="JSONL file for the listed items (- for stdout).",
)
@click.option("--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option(
    "--rate", type=float, default=None, help="TPS for the operation (default: its quota)."
)
def list_(
    service: str,
    operation: str,
    params: tuple[str, ...],
    params_file: Path | None,
    endpoint: str,
    region: str | None,
    profile: str | None,
    emulator_throttle: str,
    transport_kind: str,
    out: IO[bytes],
    concurrency: int,
    rate: float | None,
) -> None:
    """Page through a list OPERATION of SERVICE and stream every item out as JSONL.

    Uses the model's paginator (derived where botocore has none, e.g. ListFuotaTasks), fans out
    over every parameter set at once, and checks the pagination invariants (no repeated token,
    no duplicate item). Exit status 1 when a listing failed.
    """
    sets = list(_param_sets(params, params_file))
    job = parse_job(
        {
            "name": "list",
            "concurrency": concurrency,
            "steps": [
                {
                    "name": "list",
                    "kind": "list",
                    "service": service,
                    "operation": operation,
                    "items": {"values": sets},
                    "params": "{{ item }}",
                    **({"rate": rate} if rate else {}),
                }
            ],
        }
    )

    def sink(step_name: str, key: str, items: list[Any]) -> None:
        for element in items:
            out.write(orjson.dumps(element, default=str) + b"\n")

    reporter = ConsoleReporter(sys.stderr, progress=False)
    with resolve_endpoint(endpoint, emulator_throttle) as (url, label):
        summary = anyio.run(
            _list_job,
            job,
            url,
            label,
            region,
            profile,
            concurrency,
            sink,
            reporter,
            transport_kind,
            backend="asyncio",
        )
    out.flush()
    if summary.exit_code:
        sys.exit(EXIT_FAILED)


async def _list_job(
    job: Job,
    url: str | None,
    label: str,
    region: str | None,
    profile: str | None,
    concurrency: int,
    sink: Any,
    reporter: ConsoleReporter,
    transport_kind: str = "fast",
) -> Any:
    async with make_transport(url, region, profile, concurrency, transport_kind) as transport:
        engine = Engine(job, transport, sink=_quiet(reporter), endpoint=label, item_sink=sink)
        return await engine.run()


def _quiet(reporter: ConsoleReporter) -> Any:
    from harness.engine import ItemFinished, RunFinished

    def sink(event: Any) -> None:
        if isinstance(event, ItemFinished) and event.status == "failed":
            reporter.print(f"listing {event.key} failed: {event.error_code}: {event.error_message}")
        elif isinstance(event, RunFinished):
            reporter.print(summary_line(event.summary))

    return sink


def summary_line(summary: Any) -> str:
    """One line: calls, items failed, elapsed."""
    calls = sum(s.calls for s in summary.stats)
    return f"{summary.job}: {calls} page calls in {summary.elapsed:.2f} s, exit {summary.exit_code}"
