"""``harness fuzz`` and ``harness sweep``: contract fuzzing, and cleaning up after a dead run.

``harness fuzz`` exits 0 when the run found no violation that the baseline does not list, 1
otherwise (or when the harness itself failed), 2 for bad usage.

Against AWS (``--endpoint aws``) the run is read-only unless ``--allow-writes`` is given, and
marks and deletes what it creates (see :class:`harness.fuzz.SafetyPolicy`). The hidden option
``--safety aws`` applies the same rules to any other endpoint, to rehearse an AWS run against the
emulator; ``--safety off`` lifts them (never needed but for tests of the rules themselves).
"""

from __future__ import annotations

import contextlib
import importlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import click

from harness.cli._extras import require_extra
from harness.cli._target import Target, check_target, open_target
from harness.errors import HarnessError, InvalidArgument
from harness.model import SEED_SERVICES, load_service, parse_operation_ref, split_operation_ref
from harness.reporting import ReportSection, ReportTable, write_html_report
from harness.transport import AioBotocoreTransport

if TYPE_CHECKING:
    from collections.abc import Iterator

    from harness.fuzz import FuzzReport, Violation

# harness.fuzz (Hypothesis, Schemathesis: most of a second) is imported by the two commands
# when they run, not when the CLI starts: every other command would pay for it, and would
# need the fuzz extra (require_extra says what to install when it is missing).

__all__ = ["fuzz", "sweep_command"]

EXIT_FAILED = 1
EXIT_USAGE = 2


def select_operations(
    services: tuple[str, ...], operations: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """The ``(service, operation)`` pairs named by ``--service`` and ``--operation``.

    ``--operation`` takes any operation reference (``Op``, ``python_name``, ``service:Op``,
    ``service.Op``); an unprefixed name is looked up in the ``--service`` services, else in the
    seed services. ``--service`` alone means every operation of it; neither
    means :data:`~harness.fuzz.SEED_OPERATIONS`.

    :raises InvalidArgument: for an unknown or ambiguous operation
    """
    from harness.fuzz import SEED_OPERATIONS

    if not operations:
        if not services:
            return SEED_OPERATIONS
        return tuple((s, name) for s in services for name in load_service(s).operations)
    selected: list[tuple[str, str]] = []
    for given in operations:
        try:
            prefixed = split_operation_ref(given)[0] is not None
            service, op = parse_operation_ref(given, None if prefixed else services or None)
        except HarnessError as exc:
            raise InvalidArgument(f"--operation {given!r}: {exc}") from None
        selected.append((service, op.name))
    return tuple(dict.fromkeys(selected))


def _check(target: Target, services: set[str]) -> str:
    """Check the target before the first call (exit 2 when it cannot work); its label."""

    async def check() -> str:
        # The fuzzers send through aiobotocore: check with the same transport.
        async with AioBotocoreTransport(
            endpoint_url=target.url,
            region=target.region,
            profile=target.profile,
            credentials=target.credentials,
            max_connections=1,
        ) as transport:
            return await check_target(transport, target, {(s, None) for s in sorted(services)})

    return anyio.run(check, backend="asyncio")


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    # SIGTERM would end the process without unwinding: turn it into SystemExit, so that the run
    # still deletes what it created (the finally blocks of run_fuzz).
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (tests invoking the command in a thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _schemathesis(
    operations: tuple[tuple[str, str], ...],
    url: str,
    examples: int,
    seed: int | None,
    negative: bool,
    credentials: tuple[str, str] | None,
    region: str,
) -> list[Violation]:
    # Imported lazily: the Schemathesis layer is optional and heavy to import.
    try:
        module = importlib.import_module("harness.fuzz._schemathesis")
        run = module.run_schemathesis
    except (ImportError, AttributeError):
        raise click.UsageError(
            "--schemathesis: the Schemathesis layer (harness.fuzz._schemathesis) is not "
            "available in this installation"
        ) from None
    found: list[Violation] = []
    for service in sorted({s for s, _ in operations}):
        names = [name for s, name in operations if s == service]
        found += run(
            service,
            url,
            examples=examples,
            seed=seed,
            negative=negative,
            operations=names,
            credentials=credentials,
            region=region,
        )
    return found


def write_html(report: FuzzReport, path: Path) -> None:
    """The report as HTML: counts per check, the violations, latency per operation."""
    checks = ReportTable(
        "Checks",
        ("check", "passed", "failed", "skipped"),
        [
            (check, str(c.passed), str(c.failed), str(c.skipped))
            for check, c in report.tally.per_check().items()
        ],
        ["fail" if c.failed else "ok" for c in report.tally.per_check().values()],
    )
    violations = ReportTable(
        "Violations",
        ("check", "operation", "message", "answer", "new", "fingerprint"),
        [
            (
                v.check,
                v.operation,
                v.message,
                f"{v.status} {v.error_code or ''}",
                "no" if v.fingerprint in report.known else "yes",
                v.fingerprint,
            )
            for v in report.violations
        ],
        ["ok" if v.fingerprint in report.known else "fail" for v in report.violations],
    )
    facts = {
        "target": report.target,
        "run id": report.run_id,
        "seed": str(report.seed),
        "violations": f"{len(report.violations)} ({len(report.new)} new)",
    }
    notes = [*report.errors, *report.leftovers]
    sections = [
        ReportSection("Contract checks", facts=facts, notes=notes, tables=[checks, violations]),
        ReportSection("Operations", stats=report.stats),
    ]
    write_html_report(path, "harness fuzz", sections, subtitle=report.target)


@click.command()
# Not endpoint_options: the fuzzers always send through aiobotocore (botocore's serializers are
# what an SDK sends, for any operation and any invalid value), so --transport has no say here.
@click.option(
    "--endpoint",
    default=None,
    help="embedded (start the emulator for this run), aws, or a URL. Default: embedded, or "
    "aws when AWS_ENDPOINT_URL[_<SERVICE>] is set.",
)
@click.option(
    "--region",
    default=None,
    help="Region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1).",
)
@click.option("--profile", default=None, help="A named profile (not for embedded).")
@click.option(
    "--emulator-throttle",
    type=click.Choice(["off", "aws"]),
    default="off",
    show_default=True,
    help="Throttling of the embedded emulator.",
)
@click.option("--service", "services", multiple=True, help="Fuzz every operation of S.")
@click.option(
    "--operation",
    "operations",
    multiple=True,
    help="Fuzz O (Op, python_name, service:Op or service.Op).",
)
@click.option(
    "--examples",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Examples per property (state machines run a quarter as many, longer).",
)
@click.option("--seed", type=int, default=None, help="Hypothesis seed (default: derandomized).")
@click.option(
    "--negative/--no-negative",
    default=True,
    show_default=True,
    help="Also send requests that break one constraint.",
)
@click.option("--stateful", is_flag=True, help="Also run the state machines.")
@click.option("--schemathesis", "use_schemathesis", is_flag=True, help="Also run Schemathesis.")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write JUnit XML here (a test case per operation and check).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as JSON here.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Accepted violations: only violations not listed there fail the run.",
)
@click.option("--update-baseline", is_flag=True, help="Write this run's violations there.")
@click.option("--allow-writes", is_flag=True, help="Against AWS: send valid writes too.")
@click.option("--run-id", default=None, help="Marks created resources (default: random).")
@click.option(
    "--quotas/--no-quotas",
    default=None,
    help="Wait for the model's quotas (default: only against AWS).",
)
@click.option("--safety", type=click.Choice(["auto", "aws", "off"]), default="auto", hidden=True)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as HTML here.",
)
def fuzz(
    endpoint: str | None,
    region: str | None,
    profile: str | None,
    emulator_throttle: str,
    services: tuple[str, ...],
    operations: tuple[str, ...],
    examples: int,
    seed: int | None,
    negative: bool,
    stateful: bool,
    use_schemathesis: bool,
    junit: Path | None,
    json_path: Path | None,
    baseline: Path | None,
    update_baseline: bool,
    allow_writes: bool,
    run_id: str | None,
    quotas: bool | None,
    safety: str,
    html_path: Path | None,
) -> None:
    """Fuzz operations against their models and report contract violations.

    Checks: valid-accepted, invalid-rejected, response-conforms, error-declared,
    idempotent-replay, read-after-create (--stateful) and no-5xx. Each violation comes with its
    shrunk input, the answer and a boto3 snippet that reproduces it. Exit status 1 when a
    violation is not in the --baseline.
    """
    require_extra("fuzz", "harness fuzz")
    from harness.fuzz import (
        FuzzConfig,
        FuzzReport,
        FuzzSession,
        SafetyPolicy,
        load_baseline,
        new_run_id,
        run_fuzz,
        summary_text,
        write_baseline,
        write_junit,
    )

    if update_baseline and baseline is None:
        raise click.UsageError("--update-baseline needs --baseline PATH")
    selected = select_operations(services, operations)
    with open_target(
        endpoint,
        services={s for s, _ in selected},
        region=region,
        profile=profile,
        emulator_throttle=emulator_throttle,
    ) as target:
        mode: Literal["aws", "off"] = "aws" if safety == "aws" else "off"
        if safety == "auto":
            mode = "aws" if target.kind == "aws" else "off"
        if use_schemathesis and (mode == "aws" or target.url is None):
            raise click.UsageError(
                "--schemathesis cannot run against AWS: its requests are neither marked nor "
                "cleaned up; run it against an emulator"
            )
        label = _check(target, {s for s, _ in selected})
        policy = SafetyPolicy(mode, allow_writes, run_id or new_run_id())
        config = FuzzConfig(selected, examples, seed, negative, stateful, policy)
        if mode == "aws":
            hint = f"harness sweep --run-id {policy.run_id}"
            click.echo(f"run id {policy.run_id} (after a crash, `{hint}` deletes its leftovers)")
        known = load_baseline(baseline) if baseline is not None and not update_baseline else None
        report = FuzzReport(label, policy.run_id, seed, known=known or frozenset())
        session = FuzzSession(
            endpoint_url=target.url,
            region=target.region,
            profile=target.profile,
            credentials=target.credentials,
            quotas=target.kind == "aws" if quotas is None else quotas,
        )
        with _terminate_as_exit(), session:
            run_fuzz(config, session, report)
            if use_schemathesis and target.url is not None:
                report.add(
                    _schemathesis(
                        selected,
                        target.url,
                        examples,
                        seed,
                        negative,
                        target.credentials,
                        session.region,
                    )
                )
    if update_baseline and baseline is not None:
        write_baseline(baseline, report.violations)
        report.known = frozenset(v.fingerprint for v in report.violations)
    click.echo(summary_text(report))
    if json_path is not None:
        report.write_json(json_path)
    if junit is not None:
        write_junit(report, junit)
    if html_path is not None:
        write_html(report, html_path)
    if report.failed:
        raise SystemExit(EXIT_FAILED)


@click.command("sweep")
@click.option("--run-id", required=True, help="The run whose resources to delete.")
@click.option(
    "--endpoint",
    default="aws",
    show_default=True,
    help="aws (as the SDKs resolve it: AWS_ENDPOINT_URL[_<SERVICE>] honoured), or a URL.",
)
@click.option(
    "--region",
    default=None,
    help="Region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1).",
)
@click.option("--profile", default=None, help="A named profile.")
def sweep_command(run_id: str, endpoint: str, region: str | None, profile: str | None) -> None:
    """Delete what a fuzz run left behind, and nothing else.

    A resource of a type that takes tags is the run's when its tag harness-run-id names RUNID
    (its name does not matter); one of a type that takes none (IoT things) when its name starts
    with harness-RUNID-. Exit status 1 when some could not be listed, judged or deleted.
    """
    require_extra("fuzz", "harness sweep")
    from harness.fuzz import FuzzSession, SafetyPolicy, sweep

    SafetyPolicy("aws", run_id=run_id)  # validates the run id before anything is listed
    if endpoint == "embedded":
        raise click.UsageError("--endpoint embedded: a new emulator holds nothing to sweep")
    with open_target(endpoint, services=SEED_SERVICES, region=region, profile=profile) as target:
        _check(target, set(SEED_SERVICES))
        # Against AWS the sweep keeps to the model's quotas: it reads the tags of every
        # resource of the seed types, which can be thousands of calls.
        session = FuzzSession(
            endpoint_url=target.url,
            region=target.region,
            profile=target.profile,
            credentials=target.credentials,
            quotas=target.kind == "aws",
        )
        with session:
            deleted, failed = sweep(session, run_id)
    for what in deleted:
        click.echo(f"deleted {what}")
    for what in failed:
        click.echo(f"could not delete {what}", err=True)
    click.echo(f"{len(deleted)} deleted, {len(failed)} failed")
    if failed:
        raise SystemExit(EXIT_FAILED)
