"""``harness run`` and ``harness list``: bulk jobs and listings through the engine."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import click
import orjson

from harness.cli._rates import RATE, parse_operation_rates
from harness.cli._stops import Interrupted, SignalStop, resume_command, stop_options
from harness.cli._target import (
    EMULATOR_CREDENTIALS,
    Target,
    check_target,
    endpoint_options,
    make_transport,
    open_target,
)
from harness.engine import (
    MAX_CONCURRENCY,
    Engine,
    Job,
    Journal,
    Limits,
    RunSummary,
    load_job,
    parse_job,
    read_journal,
)
from harness.errors import InvalidArgument, JobError
from harness.reporting import ConsoleReporter, stats_section, write_html_report, write_json
from harness.throttle import BucketRegistry
from harness.transport import FastTransport

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["list_", "run"]

EXIT_FAILED = 1
EXIT_USAGE = 2


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
    help="Rate for an operation, e.g. CreateThing=50 or iot:create_thing=0.2 (repeatable).",
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
@stop_options
@click.pass_context
def run(
    ctx: click.Context,
    job_file: Path,
    endpoint: str | None,
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
    max_connection_failures: int,
    stop_grace: float,
) -> None:
    """Run a bulk job file against a target.

    Exit status: 0 when every item succeeded; 1 when some failed (listed in the summary) or the
    run stopped early (circuit breaker, refused credentials, journal write error); 2 for a bad
    job file or usage, an endpoint that does not answer, missing credentials or an unknown
    profile (nothing is sent then); 130 after SIGINT, 143 after SIGTERM. A run that stopped
    early prints the --resume command that continues it.
    """
    job = load_job(job_file, limits=Limits.from_env(os.environ))
    overrides = parse_operation_rates(rates, {(s.service, s.operation.name) for s in job.steps})
    reporter = ConsoleReporter(progress=not no_progress)
    if dry_run:
        # Nothing is sent: no endpoint, profile or credentials are looked at.
        offline = FastTransport(
            endpoint_url="http://127.0.0.1:9",
            region=region or job.region or "us-east-1",
            credentials=EMULATOR_CREDENTIALS,
            max_connections=1,
        )
        engine = Engine(job, offline, sink=reporter)
        anyio.run(functools.partial(engine.preflight, max_items=job.limits.dry_run_items))
        reporter.print(f"dry run: {job.name} is valid; nothing was sent")
        return
    path = _journal_path(job, journal, resume)
    # Locked first: a second run on this journal is refused before it starts anything.
    held = Journal(path, job.name)
    summary: RunSummary | None = None
    try:
        feeding = frozenset(s.source.upstream for s in job.steps if s.source.upstream)
        state = read_journal(path, keep_outputs=feeding) if resume else None
        if state is not None and state.job not in (None, job.name):
            raise JobError(f"journal {path} belongs to job {state.job!r}, not {job.name!r}")
        state_dir = emulator_state_dir(path)
        if not resume and state_dir.exists():
            # Left by a run that stopped before its journal recorded anything.
            shutil.rmtree(state_dir)
        with open_target(
            endpoint,
            services={s.service for s in job.steps},
            region=region,
            profile=profile,
            emulator_throttle=emulator_throttle,
            file_region=job.region,
            state_dir=state_dir,
        ) as target:
            summary = anyio.run(
                _run_job,
                job,
                target,
                concurrency,
                overrides,
                held,
                state,
                reporter,
                transport_kind,
                max_connection_failures,
                stop_grace,
                # Plain asyncio: uvloop's clock advances once per loop iteration in whole
                # milliseconds, too coarse for latency percentiles, and it does not make
                # aiobotocore any faster (see the baselines).
                backend="asyncio",
            )
    except Interrupted as exc:
        reporter.print(f"stopped: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        # SIGINT before the signal watch began (starting the emulator, reading the journal).
        reporter.print(f"stopped: {Interrupted(signal.SIGINT)}")
        sys.exit(130)
    finally:
        if summary is None:
            held.discard()  # refused before the run: a new journal is not left behind
            if not path.exists():
                shutil.rmtree(emulator_state_dir(path), ignore_errors=True)
        else:
            held.close()
    document = summary.to_json()
    hint = resume_command(ctx, path) if summary.stopped is not None else None
    if hint is not None:
        document["resume"] = hint
    if summary_path is not None:
        write_json(summary_path, document)
        reporter.print(f"summary written to {summary_path}")
    if html_path is not None:
        facts = {"endpoint": summary.endpoint, "elapsed": f"{summary.elapsed:.2f} s"}
        if summary.stopped is not None and hint is not None:
            facts.update(stopped=summary.stopped.reason, resume=hint)
        section = stats_section(f"Run: {summary.job}", summary.stats, facts=facts)
        write_html_report(html_path, f"harness run: {summary.job}", [section])
        reporter.print(f"HTML report written to {html_path}")
    if hint is not None:
        # One line, as it is: a command to copy, never wrapped, no markup.
        reporter.print(f"to continue: {hint}", soft_wrap=True, markup=False, highlight=False)
    if summary.exit_code:
        sys.exit(summary.exit_code)


def emulator_state_dir(journal: Path) -> Path:
    """Where the embedded emulator keeps its state for the run of ``journal``: beside it."""
    return journal.with_name(journal.name + ".emulator")


async def _run_job(
    job: Job,
    target: Target,
    concurrency: int | None,
    overrides: list[tuple[str, str, float]],
    journal: Journal,
    state: Any,
    reporter: ConsoleReporter,
    transport_kind: str = "fast",
    max_connection_failures: int = 20,
    stop_grace: float = 10.0,
) -> RunSummary:
    registry = BucketRegistry()
    for service, operation, rate in overrides:
        registry.override(service, operation, rate)
    limit = concurrency or job.concurrency
    async with make_transport(target, limit, transport_kind) as transport:
        engine = Engine(
            job,
            transport,
            sink=reporter,
            registry=registry,
            resume_state=state,
            concurrency=limit,
            endpoint=target.label(),
            max_connection_failures=max_connection_failures,
        )
        async with SignalStop(engine, reporter.print, stop_grace).watching() as stops:
            await engine.preflight()
            # Then the target: an endpoint that does not answer or missing credentials end the
            # run here, in seconds, instead of after every item's retries.
            calls = [(s.service, s.region) for s in job.steps]
            engine.endpoint = await check_target(transport, target, calls)
            engine.journal = journal
            stops.running = True
            return await engine.run()
        raise AssertionError("unreachable")  # watching() raises Interrupted when cancelled


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
@click.option("--rate", type=RATE, default=None, help="TPS for the operation (default: its quota).")
@stop_options
def list_(
    service: str,
    operation: str,
    params: tuple[str, ...],
    params_file: Path | None,
    endpoint: str | None,
    region: str | None,
    profile: str | None,
    emulator_throttle: str,
    transport_kind: str,
    out: IO[bytes],
    concurrency: int,
    rate: float | None,
    max_connection_failures: int,
    stop_grace: float,
) -> None:
    """Page through a list OPERATION of SERVICE and stream every item out as JSONL.

    Uses the model's paginator (derived where botocore has none, e.g. ListFuotaTasks), fans out
    over every parameter set at once, and checks the pagination invariants (no repeated token,
    no duplicate item). Exit status 1 when a listing failed or was stopped early (circuit
    breaker, refused credentials), 130 after SIGINT, 143 after SIGTERM.
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
    try:
        with open_target(
            endpoint,
            services=[service],
            region=region,
            profile=profile,
            emulator_throttle=emulator_throttle,
        ) as target:
            summary = anyio.run(
                _list_job,
                job,
                target,
                concurrency,
                sink,
                reporter,
                transport_kind,
                max_connection_failures,
                stop_grace,
                backend="asyncio",
            )
    except Interrupted as exc:
        reporter.print(f"stopped: {exc}")
        sys.exit(exc.exit_code)
    finally:
        out.flush()
    if summary.exit_code:
        sys.exit(summary.exit_code)


async def _list_job(
    job: Job,
    target: Target,
    concurrency: int,
    sink: Any,
    reporter: ConsoleReporter,
    transport_kind: str = "fast",
    max_connection_failures: int = 20,
    stop_grace: float = 10.0,
) -> RunSummary:
    async with make_transport(target, concurrency, transport_kind) as transport:
        engine = Engine(
            job,
            transport,
            sink=_quiet(reporter),
            endpoint=target.label(),
            item_sink=sink,
            max_connection_failures=max_connection_failures,
        )
        async with SignalStop(engine, reporter.print, stop_grace).watching() as stops:
            await engine.preflight()
            calls = [(s.service, s.region) for s in job.steps]
            engine.endpoint = await check_target(transport, target, calls)
            stops.running = True
            return await engine.run()
        raise AssertionError("unreachable")  # watching() raises Interrupted when cancelled


def _quiet(reporter: ConsoleReporter) -> Any:
    from harness.engine import ItemFinished, RunFinished, StopRequested

    def sink(event: Any) -> None:
        if isinstance(event, ItemFinished) and event.status == "failed":
            reporter.print(f"listing {event.key} failed: {event.error_code}: {event.error_message}")
        elif isinstance(event, StopRequested) and not event.immediate:
            reporter.print(f"stopping: {event.stop.reason}")
        elif isinstance(event, RunFinished):
            reporter.print(summary_line(event.summary))

    return sink


def summary_line(summary: Any) -> str:
    """One line: calls, items failed, elapsed."""
    calls = sum(s.calls for s in summary.stats)
    stopped = f", stopped: {summary.stopped.reason}" if summary.stopped is not None else ""
    return (
        f"{summary.job}: {calls} page calls in {summary.elapsed:.2f} s{stopped}, "
        f"exit {summary.exit_code}"
    )
