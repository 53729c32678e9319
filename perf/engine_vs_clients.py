"""The engine's calls/s side by side with plain aiobotocore and boto3 threads, in the same run.

    .venv/bin/python perf/engine_vs_clients.py [--calls N] [--concurrency 64] [--rounds 3]
                                               [--json out.json] [--quick]

One ``harness emulator`` process (pinned to CPU 1 when two or more CPUs are allowed) serves every
client. For each round, and each approach in an order rotated by the round, the emulator is reset
(``POST /_harness/reset``) and a child process pinned to CPU 0 makes IoT ``CreateThing`` calls
with unique names (``bench-{approach}-{round}-{i}``): a warm-up, then ``--calls`` measured calls.

Approaches:

``engine``
    :class:`harness.engine.Engine` running a one-step job over
    :class:`harness.transport.AioBotocoreTransport`, with the CreateThing quota overridden to
    1e9 TPS (``BucketRegistry.override``) so that the token bucket never holds a call back,
    no journal and no reporter.
``engine+journal``
    The same with a :class:`harness.engine.Journal` in a temporary directory (one ``os.write``
    per item), as ``harness run`` keeps one.
``aiobotocore``
    ``asyncio.gather`` over the calls, an ``asyncio.Semaphore(C)``, one client with
    ``AioConfig(max_pool_connections=C)`` and botocore's retries off.
``boto3-threads``
    ``ThreadPoolExecutor(32)`` over one shared boto3 client with ``max_pool_connections=32`` and
    retries off (botocore clients are thread-safe for calls).

Figures per run: calls/s (wall time of the measured calls; for the engine the whole
``Engine.run``, whose preflight renders and validates every item before the first call, so the
preflight is reported too), client CPU µs per call (process CPU time, all threads), the client's
CPU share, the share of its CPU other processes took, and the emulator's CPU. Every call must
succeed on its first attempt; otherwise the run is invalid and the exit status is 1.

It prints medians over the rounds and the ratios the issue sets targets for, e.g.
``engine/aiobotocore = 0.97x (target >= 0.9x): PASS``. Nothing asserts on timing.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

# Shared with the emulator-vs-moto benchmark (same directory, on sys.path when run as a script
# and under pytest's rootdir-relative import mode): server start/stop, CPU pinning, /proc reads.
from _loadgen import cpu_idle_seconds, proc_cpu_seconds
from emulator_vs_moto import EmulatorServer, Pinning, child_setup, rotated, sigterm_as_exit

if TYPE_CHECKING:
    from collections.abc import Sequence

SCRIPT: Final[Path] = Path(__file__).resolve()
APPROACHES: Final[tuple[str, ...]] = (
    "engine",
    "engine+journal",
    "engine+fast",
    "aiobotocore",
    "boto3-threads",
)
#: The engine as ``harness run`` runs it by default: over the fast-path transport.
ENGINES: Final[tuple[str, ...]] = ("engine", "engine+journal", "engine+fast")
#: Thing-name-safe spelling of each approach (thing names allow ``[a-zA-Z0-9:_-]``).
SLUG: Final[dict[str, str]] = {
    "engine": "engine",
    "engine+journal": "engine-journal",
    "engine+fast": "engine-fast",
    "aiobotocore": "aiobotocore",
    "boto3-threads": "boto3",
}
#: The issue's targets: engine calls/s over each baseline's.
TARGETS: Final[dict[str, float]] = {"aiobotocore": 0.9, "boto3-threads": 1.25}
UNLIMITED_TPS: Final[float] = 1e9  # the CreateThing rate override: the quota never limits here
CREDENTIALS: Final[tuple[str, str]] = ("AKIDEXAMPLE", "x")  # the emulator does not verify them
REGION: Final[str] = "us-east-1"
SERVER_BUSY_BOUND: Final[float] = 0.8  # emulator CPU share above this: the server may be the limit


# ====================================================================================== worker
# The worker half runs in a child process (``--worker APPROACH``), pinned to the client CPU, and
# prints one JSON object. Each approach imports only its own client library, inside the function,
# so that the measured process holds nothing the approach does not need.
def own_cpu() -> int | None:
    """The one CPU this process is pinned to, or ``None`` when it may run on several."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    return next(iter(cpus)) if len(cpus) == 1 else None


@dataclass(slots=True)
class Window:
    """Clock readings at one instant: wall, this process's CPU, the server's, idle CPU time."""

    wall: float
    cpu: float
    client_idle: float | None  # idle time of the client's CPU (None: not pinned)
    server_cpu: float | None
    server_idle: float | None

    @classmethod
    def now(cls, server_pid: int, server_cpu: int | None) -> Window:
        """Read every clock (the cheap wall and process clocks last, closest to the calls)."""
        server = proc_cpu_seconds(server_pid)
        idle = cpu_idle_seconds(server_cpu)
        client = own_cpu()
        client_idle = None if client is None else cpu_idle_seconds(client)
        return cls(time.perf_counter(), time.process_time(), client_idle, server, idle)


@dataclass(slots=True)
class Outcome:
    """What a batch of calls came to: successes, failures by kind, a few error samples."""

    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def fail(self, code: str, message: str) -> None:
        """Count one failed call (keeping the first few messages for the report)."""
        self.errors[code] += 1
        if len(self.samples) < 3:
            self.samples.append(f"{code}: {message[:300]}")


@dataclass(slots=True)
class WorkerArgs:
    """The worker's command line."""

    approach: str
    url: str
    round: int
    calls: int
    warmup: int
    concurrency: int
    threads: int
    server_pid: int
    server_cpu: int | None

    def names(self, first: str) -> list[str]:
        """Unique thing names: ``bench-{approach}-{round}-{i}`` (``w{i}`` for the warm-up)."""
        prefix = f"bench-{SLUG[self.approach]}-{self.round}-"
        count = self.warmup if first == "w" else self.calls
        return [f"{prefix}{first}{i}" for i in range(count)]


def _error_code(exc: BaseException) -> tuple[str, str]:
    """An AWS error code (``ClientError``) or the exception's type, and its message."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code), str(exc)
    return type(exc).__name__, str(exc)


def _result(
    args: WorkerArgs,
    start: Window,
    end: Window,
    outcome: Outcome,
    warm: Outcome,
    attempts: int,
    **extra: Any,
) -> dict[str, Any]:
    """The worker's JSON record of one measured window."""

    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    return {
        "approach": args.approach,
        "round": args.round,
        "calls": args.calls,
        "warmup": args.warmup,
        "concurrency": args.threads if args.approach == "boto3-threads" else args.concurrency,
        "ok": outcome.ok,
        "attempts": attempts,
        "errors": dict(outcome.errors),
        "samples": outcome.samples,
        "warmup_ok": warm.ok,
        "warmup_errors": dict(warm.errors),
        "wall_s": end.wall - start.wall,
        "client_cpu_s": end.cpu - start.cpu,
        "client_core_idle_s": delta(start.client_idle, end.client_idle),
        "server_cpu_s": delta(start.server_cpu, end.server_cpu),
        "server_core_idle_s": delta(start.server_idle, end.server_idle),
        **extra,
    }


def work_engine(args: WorkerArgs, journal: bool, fast: bool = False) -> dict[str, Any]:
    """The harness engine: one job of ``calls`` CreateThing items over the aiobotocore transport
    (or, with ``fast``, over the fast-path transport that ``harness run`` uses by default)."""
    import anyio

    from harness.engine import Engine, Event, Journal, RunStarted, RunSummary, parse_job
    from harness.throttle import BucketRegistry
    from harness.transport import AioBotocoreTransport, FastTransport

    c = args.concurrency
    transport_class = FastTransport if fast else AioBotocoreTransport

    def job(prefix: str, count: int) -> Any:
        return parse_job(
            {
                "name": "bench",
                "concurrency": c,
                "steps": [
                    {
                        "name": "things",
                        "service": "iot",
                        "operation": "CreateThing",
                        "items": {"count": count},
                        "params": {"thingName": prefix + "{{ index }}"},
                    }
                ],
            }
        )

    def outcome_of(summary: RunSummary) -> tuple[Outcome, int]:
        out = Outcome(ok=summary.steps["things"].ok)
        for failure in summary.failures:
            out.fail(failure.error_code, failure.error_message)
        # Items beyond the kept failures still count (the engine keeps the first 1,000).
        missing = summary.failures_total - len(summary.failures)
        if missing > 0:
            out.errors["(not kept)"] += missing
        return out, summary.stats.totals().attempts

    prefix = f"bench-{SLUG[args.approach]}-{args.round}-"
    sent: list[Window] = []  # the moment the preflight ended and the first call could go

    def sink(event: Event) -> None:
        # Called for every event (one per item too): keep the test cheap.
        if type(event) is RunStarted:
            sent.append(Window.now(args.server_pid, args.server_cpu))

    async def main() -> dict[str, Any]:
        registry = BucketRegistry()
        # The model's CreateThing quota (a few hundred TPS) would pace the engine below what
        # the clients reach unpaced: lift it so that the comparison is of the machinery alone.
        registry.override("iot", "CreateThing", UNLIMITED_TPS)
        async with transport_class(
            endpoint_url=args.url, region=REGION, credentials=CREDENTIALS, max_connections=c
        ) as transport:
            # Create the bucket now, so that the registry is not empty: engines that took
            # ``registry or BucketRegistry()`` silently replaced an empty (hence falsy: it has
            # __len__) registry by a fresh one at the model's quota (100 TPS), and the benchmark
            # measured the quota. The rate actually used is checked after the run (bucket_rate).
            registry.bucket(transport.identity, transport.region, "iot", "CreateThing")
            # The warm-up creates the client (excluded from the window, as for the others) and
            # opens the pool's connections.
            warm_engine = Engine(job(prefix + "w", args.warmup), transport, registry=registry)
            warm, _ = outcome_of(await warm_engine.run())
            with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
                book = Journal(Path(tmp) / "bench.jsonl", "bench") if journal else None
                try:
                    engine = Engine(
                        job(prefix, args.calls),
                        transport,
                        sink=sink,
                        registry=registry,
                        journal=book,
                        concurrency=c,
                    )
                    gc.collect()  # every approach starts its window with a clean heap
                    start = Window.now(args.server_pid, args.server_cpu)
                    summary = await engine.run()
                    end = Window.now(args.server_pid, args.server_cpu)
                finally:
                    if book is not None:
                        book.close()
        outcome, attempts = outcome_of(summary)
        extra: dict[str, Any] = {
            "preflight_s": None,
            "preflight_cpu_s": None,
            # The TPS the engine's bucket allowed: must be the override, or the quota paced it.
            "bucket_rate": summary.rates.get("iot.CreateThing", {}).get("rate"),
        }
        if sent:
            extra["preflight_s"] = sent[0].wall - start.wall
            extra["preflight_cpu_s"] = sent[0].cpu - start.cpu
        return _result(args, start, end, outcome, warm, attempts, **extra)

    result: dict[str, Any] = anyio.run(main, backend="asyncio")
    return result


def work_aiobotocore(args: WorkerArgs) -> dict[str, Any]:
    """Plain aiobotocore: ``asyncio.gather`` over every call, at most ``C`` in flight."""
    import asyncio

    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    async def batch(client: Any, names: list[str], limit: asyncio.Semaphore) -> Outcome:
        out = Outcome()

        async def one(name: str) -> None:
            async with limit:
                try:
                    await client.create_thing(thingName=name)
                except Exception as exc:  # any failure is counted, never raised: see the report
                    out.fail(*_error_code(exc))
                else:
                    out.ok += 1

        await asyncio.gather(*(one(n) for n in names))
        return out

    async def main() -> dict[str, Any]:
        config = AioConfig(
            max_pool_connections=args.concurrency,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        session = AioSession()
        async with session.create_client(
            "iot",
            region_name=REGION,
            endpoint_url=args.url,
            aws_access_key_id=CREDENTIALS[0],
            aws_secret_access_key=CREDENTIALS[1],
            config=config,
        ) as client:
            limit = asyncio.Semaphore(args.concurrency)
            warm = await batch(client, args.names("w"), limit)
            names = args.names("")  # built before the window, like the engine's job
            gc.collect()
            start = Window.now(args.server_pid, args.server_cpu)
            outcome = await batch(client, names, limit)
            end = Window.now(args.server_pid, args.server_cpu)
        return _result(args, start, end, outcome, warm, args.calls)

    return asyncio.run(main())


def work_boto3_threads(args: WorkerArgs) -> dict[str, Any]:
    """boto3 in ``ThreadPoolExecutor(threads)`` over one shared client (thread-safe for calls)."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS[0],
        aws_secret_access_key=CREDENTIALS[1],
        region_name=REGION,
    )
    client = session.client(
        "iot",
        endpoint_url=args.url,
        config=Config(
            max_pool_connections=args.threads,
            retries={"total_max_attempts": 1, "mode": "standard"},
        ),
    )

    def one(name: str) -> tuple[str, str] | None:
        try:
            client.create_thing(thingName=name)
        except Exception as exc:  # counted by the caller, never raised
            return _error_code(exc)
        return None

    def batch(pool: ThreadPoolExecutor, names: list[str]) -> Outcome:
        out = Outcome()
        for failed in pool.map(one, names):
            if failed is None:
                out.ok += 1
            else:
                out.fail(*failed)
        return out

    try:
        with ThreadPoolExecutor(args.threads, thread_name_prefix="bench") as pool:
            # The warm-up also starts the pool's threads (ThreadPoolExecutor starts them lazily).
            warm = batch(pool, args.names("w"))
            names = args.names("")
            gc.collect()
            start = Window.now(args.server_pid, args.server_cpu)
            outcome = batch(pool, names)
            end = Window.now(args.server_pid, args.server_cpu)
    finally:
        client.close()  # its connection pool's sockets
    return _result(args, start, end, outcome, warm, args.calls)


def worker_main(args: argparse.Namespace) -> int:
    """Run one approach once and print its record as one JSON object on stdout."""
    wargs = WorkerArgs(
        approach=args.worker,
        url=args.url,
        round=args.round,
        calls=args.calls,
        warmup=args.warmup,
        concurrency=args.concurrency,
        threads=args.threads,
        server_pid=args.server_pid,
        server_cpu=args.server_cpu,
    )
    if args.worker in ENGINES:
        out = work_engine(
            wargs, journal=args.worker == "engine+journal", fast=args.worker == "engine+fast"
        )
    elif args.worker == "aiobotocore":
        out = work_aiobotocore(wargs)
    else:
        out = work_boto3_threads(wargs)
    json.dump(out, sys.stdout)
    return 0


# ================================================================================ orchestrator
@dataclass(slots=True)
class Run:
    """One measured window of one approach, as the worker reported it."""

    approach: str
    round: int
    calls: int
    ok: int
    attempts: int
    errors: dict[str, int]
    samples: list[str]
    wall_s: float
    client_cpu_s: float
    client_core_idle_s: float | None  # idle time of the client's CPU (pinned runs only)
    server_cpu_s: float | None
    server_core_idle_s: float | None
    preflight_s: float | None = None
    preflight_cpu_s: float | None = None
    bucket_rate: float | None = None  # engine runs: the CreateThing TPS its bucket allowed

    @property
    def calls_per_s(self) -> float:
        """Calls per wall-clock second over the window (the engine's includes its preflight)."""
        return self.calls / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def send_calls_per_s(self) -> float | None:
        """The engine's calls/s after its preflight, from the first call to the last answer."""
        if self.preflight_s is None or self.wall_s <= self.preflight_s:
            return None
        return self.calls / (self.wall_s - self.preflight_s)

    @property
    def client_us_per_call(self) -> float:
        """Client process CPU (all threads) per call, in µs."""
        return self.client_cpu_s / self.calls * 1e6

    @property
    def client_share(self) -> float:
        """Share of one CPU the client used (near 100%: the client was the limit)."""
        return self.client_cpu_s / self.wall_s

    @property
    def client_foreign_share(self) -> float | None:
        """Share of the client's CPU other processes took over the window (pinned runs).

        The busy share of that CPU (1 - idle) minus the client's own share: noise that slowed
        the client down (this script idles on the same CPU and adds next to nothing).
        """
        if self.client_core_idle_s is None:
            return None
        busy = self.wall_s - self.client_core_idle_s
        return max(0.0, (busy - self.client_cpu_s) / self.wall_s)

    @property
    def server_us_per_call(self) -> float | None:
        """Emulator CPU per call, in µs."""
        return None if self.server_cpu_s is None else self.server_cpu_s / self.calls * 1e6

    @property
    def server_share(self) -> float | None:
        """Share of one CPU the emulator used over the window."""
        return None if self.server_cpu_s is None else self.server_cpu_s / self.wall_s

    @property
    def preflight_us_per_item(self) -> float | None:
        """The engine's preflight CPU per item, in µs."""
        return None if self.preflight_cpu_s is None else self.preflight_cpu_s / self.calls * 1e6

    def problem(self) -> str | None:
        """Why this run is invalid, or ``None``: every call must succeed at its first attempt."""
        failed = self.calls - self.ok
        if failed or self.errors:
            return f"{failed} of {self.calls} calls failed: {self.errors}; e.g. {self.samples[:1]}"
        if self.attempts != self.calls:
            return f"{self.attempts} attempts for {self.calls} calls (retries happened)"
        if self.approach.startswith("engine") and (self.bucket_rate or 0.0) < UNLIMITED_TPS:
            return (
                f"the engine's CreateThing bucket ran at {self.bucket_rate} TPS, not the "
                f"{UNLIMITED_TPS:.0e} override: the quota paced it"
            )
        return None

    def summary(self) -> dict[str, Any]:
        """The record plus derived figures, for --json."""
        return asdict(self) | {
            "calls_per_s": self.calls_per_s,
            "send_calls_per_s": self.send_calls_per_s,
            "client_cpu_us_per_call": self.client_us_per_call,
            "client_cpu_share": self.client_share,
            "client_foreign_share": self.client_foreign_share,
            "server_cpu_us_per_call": self.server_us_per_call,
            "server_cpu_share": self.server_share,
            "preflight_cpu_us_per_item": self.preflight_us_per_item,
        }


@dataclass(slots=True)
class Options:
    """The command line, resolved."""

    calls: int
    warmup: int
    concurrency: int
    threads: int
    rounds: int
    limit_s: float
    json_path: Path | None
    pin: bool
    quick: bool


def reset_emulator(url: str) -> None:
    """``POST /_harness/reset``: every approach starts with an empty emulator."""
    request = urllib.request.Request(
        f"{url}/_harness/reset", data=b"", method="POST", headers={"X-Harness-Admin": "1"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def run_worker(
    approach: str, round_no: int, server: EmulatorServer, opts: Options, cpu: int | None
) -> Run | str:
    """One approach in a child process pinned to ``cpu``; its run, or what went wrong."""
    argv = [
        sys.executable,
        str(SCRIPT),
        "--worker",
        approach,
        "--url",
        server.url,
        "--round",
        str(round_no),
        "--calls",
        str(opts.calls),
        "--warmup",
        str(opts.warmup),
        "--concurrency",
        str(opts.concurrency),
        "--threads",
        str(opts.threads),
        "--server-pid",
        str(server.pid),
    ]
    if server.cpu is not None:
        argv += ["--server-cpu", str(server.cpu)]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=opts.limit_s,
            check=False,
            # Its own session, hence its own scheduler autogroup (see child_setup): pinned
            # before exec, so that every thread it starts (boto3's 32) inherits the CPU.
            start_new_session=True,
            preexec_fn=child_setup(cpu, 0),
        )
    except subprocess.TimeoutExpired:  # subprocess.run kills the child before raising
        return f"did not finish within {opts.limit_s:.0f} s"
    try:
        out: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        return f"worker exited {done.returncode}: {(done.stderr or done.stdout)[-2000:]}"
    if out.get("warmup_ok") != opts.warmup:
        return f"warm-up failed: {out.get('warmup_errors')}"
    return Run(
        approach=approach,
        round=round_no,
        calls=out["calls"],
        ok=out["ok"],
        attempts=out["attempts"],
        errors=out["errors"],
        samples=out["samples"],
        wall_s=out["wall_s"],
        client_cpu_s=out["client_cpu_s"],
        client_core_idle_s=out["client_core_idle_s"],
        server_cpu_s=out["server_cpu_s"],
        server_core_idle_s=out["server_core_idle_s"],
        preflight_s=out.get("preflight_s"),
        preflight_cpu_s=out.get("preflight_cpu_s"),
        bucket_rate=out.get("bucket_rate"),
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


@dataclass(slots=True)
class Median:
    """Medians over the valid rounds of one approach."""

    rounds: int
    calls_per_s: float
    calls_per_s_min: float
    calls_per_s_max: float
    send_calls_per_s: float | None
    client_us_per_call: float
    client_share: float
    client_foreign_share: float | None
    server_us_per_call: float | None
    server_share: float | None
    preflight_s: float | None
    preflight_us_per_item: float | None

    @classmethod
    def of(cls, runs: Sequence[Run]) -> Median:
        """Medians (and the calls/s range) of several runs of one approach."""
        rates = [r.calls_per_s for r in runs]
        return cls(
            rounds=len(runs),
            calls_per_s=statistics.median(rates),
            calls_per_s_min=min(rates),
            calls_per_s_max=max(rates),
            send_calls_per_s=_median([r.send_calls_per_s for r in runs]),
            client_us_per_call=statistics.median(r.client_us_per_call for r in runs),
            client_share=statistics.median(r.client_share for r in runs),
            client_foreign_share=_median([r.client_foreign_share for r in runs]),
            server_us_per_call=_median([r.server_us_per_call for r in runs]),
            server_share=_median([r.server_share for r in runs]),
            preflight_s=_median([r.preflight_s for r in runs]),
            preflight_us_per_item=_median([r.preflight_us_per_item for r in runs]),
        )


def _by_round(runs: Sequence[Run], ours: str, theirs: str) -> list[float]:
    """``ours``/``theirs`` calls/s within each round where both are valid (paired in time)."""
    out: list[float] = []
    for rnd in sorted({r.round for r in runs}):
        pair = {r.approach: r for r in runs if r.round == rnd}
        if ours in pair and theirs in pair:
            out.append(pair[ours].calls_per_s / pair[theirs].calls_per_s)
    return out


def summarize(runs: Sequence[Run], opts: Options) -> dict[str, Any]:
    """Print the table and the ratio lines; return the JSON-ready summary."""
    table = {a: Median.of(rs) for a in APPROACHES if (rs := [r for r in runs if r.approach == a])}
    print()
    print(
        f"medians over {opts.rounds} round(s); {opts.calls:,} CreateThing calls per run after "
        f"{opts.warmup:,} warm-up; concurrency {opts.concurrency} (boto3: {opts.threads} threads)"
    )
    header = (
        f"{'approach':<15} {'calls/s':>8} {'(min-max)':>15} {'client µs/call':>14} "
        f"{'client CPU':>10} {'foreign':>7} {'server µs/call':>14} {'server CPU':>10}"
    )
    print(header)
    print("-" * len(header))
    for approach in APPROACHES:
        m = table.get(approach)
        if m is None:
            print(f"{approach:<15} no valid run")
            continue
        span = f"({m.calls_per_s_min:,.0f}-{m.calls_per_s_max:,.0f})"
        print(
            f"{approach:<15} {m.calls_per_s:>8,.0f} {span:>15} {m.client_us_per_call:>14,.0f} "
            f"{_pct(m.client_share):>10} {_pct(m.client_foreign_share):>7} "
            f"{_num(m.server_us_per_call):>14} {_pct(m.server_share):>10}"
        )
    print(
        "client CPU: share of one CPU the client process used (all threads); foreign: share of"
        "\nthe client's CPU that other processes took (noise); server: the emulator's CPU."
    )
    for approach in ENGINES:
        m = table.get(approach)
        if m is not None and m.preflight_s is not None:
            print(
                f"{approach}: calls/s includes the preflight ({m.preflight_s * 1000:,.0f} ms, "
                f"{_num(m.preflight_us_per_item)} µs CPU per item: every item rendered and "
                f"validated before the first call); from the first call on: "
                f"{_num(m.send_calls_per_s)}/s"
            )
    print(
        f"engine runs: CreateThing rate overridden to {UNLIMITED_TPS:.0e} TPS so that the quota "
        "does not limit the benchmark; no reporter attached."
    )
    print()
    ratios: dict[str, dict[str, Any]] = {}
    for ours in ENGINES:
        for theirs, target in TARGETS.items():
            a, b = table.get(ours), table.get(theirs)
            if a is None or b is None:
                print(f"{ours}/{theirs} = n/a (no valid run of {ours if a is None else theirs})")
                continue
            ratio = a.calls_per_s / b.calls_per_s
            cpu_ratio = b.client_us_per_call / a.client_us_per_call
            by_round = _by_round(runs, ours, theirs)
            verdict = "PASS" if ratio >= target else "BELOW"
            line = f"{ours}/{theirs} = {ratio:.2f}x (target >= {target}x): {verdict}"
            if ours != "engine":
                line = f"  {line}"  # the headline is the engine without a journal
            print(
                f"{line}  by round: {', '.join(f'{x:.2f}x' for x in by_round)}; per CPU µs: "
                f"{cpu_ratio:.2f}x"
            )
            ratios[f"{ours}/{theirs}"] = {
                "calls_per_s": ratio,
                "target": target,
                "pass": ratio >= target,
                "by_round": by_round,
                "client_cpu_per_call": cpu_ratio,
            }
    print(
        "per CPU µs: the baseline's client CPU per call over the engine's, i.e. calls per "
        "client-CPU-second; the stable form of the ratio on a noisy machine."
    )
    busy = [a for a, m in table.items() if (m.server_share or 0.0) >= SERVER_BUSY_BOUND]
    if busy:
        print(
            f"caution: the emulator used >= {SERVER_BUSY_BOUND:.0%} of its CPU for "
            f"{', '.join(busy)}: the server, not the client, may have set the pace there."
        )
    return {
        "medians": {a: asdict(m) for a, m in table.items()},
        "ratios": ratios,
    }


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    """The command line (``--quick`` shrinks the defaults; ``--worker`` is internal)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, help="measured calls per run (default 5000)")
    parser.add_argument("--warmup", type=int, help="warm-up calls per run (default 300)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="calls in flight (engine, aiobotocore)"
    )
    parser.add_argument("--threads", type=int, default=32, help="boto3 ThreadPoolExecutor size")
    parser.add_argument("--rounds", type=int, help="rounds in rotated order (default 3)")
    parser.add_argument(
        "--limit-s", type=float, help="give up a run after this (default 300 s, quick 60 s)"
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="write all numbers here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--quick", action="store_true", help="tiny counts, 1 round (for CI)")
    # Internal: the child process that runs one approach.
    parser.add_argument("--worker", choices=APPROACHES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--server-cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick: bool = args.quick
    opts = Options(
        calls=args.calls or (200 if quick else 5000),
        warmup=args.warmup if args.warmup is not None else (30 if quick else 300),
        concurrency=args.concurrency,
        threads=args.threads,
        rounds=args.rounds or (1 if quick else 3),
        limit_s=args.limit_s or (60.0 if quick else 300.0),
        json_path=args.json_path,
        pin=not args.no_pin,
        quick=quick,
    )
    # A warm-up of at least one call: it is what creates each client outside the window.
    if min(opts.calls, opts.warmup, opts.concurrency, opts.threads, opts.rounds) < 1:
        parser.error("--calls, --warmup, --concurrency, --threads and --rounds must be >= 1")
    args.calls, args.warmup = opts.calls, opts.warmup
    return opts, args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every call of every run succeeded."""
    opts, args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args)
    pinning = Pinning.choose(opts.pin)
    if pinning.client is not None:
        os.sched_setaffinity(0, {pinning.client})  # this script idles; keep it off the server's CPU
    print(
        f"engine vs clients: {os.cpu_count()} CPUs; "
        f"{pinning.describe().replace('load generator', 'clients')}; "
        f"Python {platform.python_version()}",
        flush=True,
    )
    started = time.monotonic()
    runs: list[Run] = []
    problems: list[str] = []
    server = EmulatorServer(pinning.server)
    try:
        with sigterm_as_exit():
            server.start()
            print(f"emulator pid {server.pid} on {server.url}", flush=True)
            for round_no in range(opts.rounds):
                for approach in rotated(APPROACHES, round_no):
                    reset_emulator(server.url)
                    got = run_worker(approach, round_no, server, opts, pinning.client)
                    if isinstance(got, str):
                        problems.append(f"{approach} round {round_no + 1}: {got}")
                        print(f"round {round_no + 1}: {approach:<15} FAILED: {got[:300]}")
                        continue
                    issue = got.problem()
                    if issue is not None:
                        problems.append(f"{approach} round {round_no + 1}: {issue}")
                    else:
                        runs.append(got)
                    print(
                        f"round {round_no + 1}: {approach:<15} {got.calls_per_s:>7,.0f}/s  client "
                        f"{got.client_us_per_call:,.0f} µs/call ({_pct(got.client_share)} CPU, "
                        f"foreign {_pct(got.client_foreign_share)})  server "
                        f"{_num(got.server_us_per_call)} µs/call ({_pct(got.server_share)} CPU)"
                        f"  ok {got.ok}/{got.calls}",
                        flush=True,
                    )
                    if not server.alive():
                        problems.append(f"the emulator died:\n{server.log_tail()}")
                        raise RuntimeError("the emulator died")
    except (RuntimeError, OSError) as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    except (KeyboardInterrupt, SystemExit):
        print("interrupted: the emulator was stopped", flush=True)
        raise
    finally:
        server.stop()
    summary = summarize(runs, opts)
    for problem in problems:
        print(f"INVALID: {problem}")
    valid = not problems and {r.approach for r in runs} == set(APPROACHES)
    print(f"{'valid' if valid else 'INVALID'} run, {time.monotonic() - started:.0f} s")
    if opts.json_path is not None:
        data = {
            "options": asdict(opts) | {"json_path": str(opts.json_path)},
            "machine": {
                "cpus": os.cpu_count(),
                "pinning": asdict(pinning),
                "python": platform.python_version(),
            },
            "runs": [r.summary() for r in runs],
            "problems": problems,
            "valid": valid,
            "server_pid": server.pid if server.proc is not None else None,
        } | summary
        opts.json_path.write_text(json.dumps(data, indent=2))
    return 0 if valid else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
