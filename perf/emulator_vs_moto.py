"""Throughput of ``harness emulator`` side by side with moto's server, in the same run.

    .venv/bin/python perf/emulator_vs_moto.py [--calls N] [--connections C] [--rounds R]
                                              [--json out.json] [--quick]

For each round (servers in rotated order, one at a time, each freshly started) and each operation
(IoT CreateThing, Greengrass V2 CreateDeployment) it:

1. checks with boto3 that a real SDK call works (an operation moto answers with an error is
   reported as "moto: not implemented" and skipped for moto only);
2. runs the lean load generator (``perf/_loadgen.py``) in a child process pinned to CPU 0, with
   the server pinned to CPU 1: a warm-up, then ``--calls`` unique requests over ``--connections``
   keep-alive connections;
3. records calls/s, the server's and the client's CPU µs per call and CPU share, and every status.

It prints a table of medians over the rounds and the ``emulator/moto`` ratios, e.g.
``CreateThing: emulator 7,900/s vs moto 360/s = 21.9x``. A run in which any answer is not 2xx is
invalid: it is reported and the exit status is 1.

CPU µs per call is the stable figure on a noisy machine; calls/s moves with whatever else runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType

HERE: Final[Path] = Path(__file__).resolve().parent
LOADGEN: Final[Path] = HERE / "_loadgen.py"
SERVERS: Final[tuple[str, ...]] = ("emulator", "moto")
OPERATIONS: Final[tuple[str, ...]] = ("CreateThing", "CreateDeployment")
EXPECTED_STATUS: Final[dict[str, int]] = {"CreateThing": 200, "CreateDeployment": 201}
TARGET_RATIO: Final[float] = 20.0  # the goal for CreateThing calls/s
SERVER_IDLE_BOUND: Final[float] = 0.10  # server CPU idle this much: the server was not the limit
BUSY_FOREIGN_SHARE: Final[float] = 0.20  # foreign load above this makes calls/s unreliable


# ------------------------------------------------------------------------------------ servers
@dataclass(slots=True)
class Pinning:
    """Which CPU the server and the load generator run on (``None``: not pinned)."""

    server: int | None
    client: int | None

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        """Server on the second allowed CPU, load generator on the first, when 2+ are allowed."""
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not enabled or len(cpus) < 2:
            return cls(None, None)
        return cls(server=cpus[1], client=cpus[0])

    def describe(self) -> str:
        """One line for the report."""
        if self.server is None:
            return "not pinned (fewer than 2 CPUs allowed, or --no-pin): both share the CPUs"
        return (
            f"server pinned to CPU {self.server}, load generator (and this script) to CPU "
            f"{self.client} (os.sched_setaffinity)"
        )


def child_setup(cpu: int | None, nice: int) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child to ``cpu`` and applies ``nice``, before exec.

    Doing it before exec means every thread the child later starts inherits both. Children are
    started in a session of their own (``start_new_session``): with the kernel's scheduler
    autogroups (``/proc/sys/kernel/sched_autogroup_enabled``) CPU time is shared between
    sessions first, and a single-threaded server sharing a session with the load generator
    would get only part of its session's weight on its CPU, while moto's thread per
    connection would pull most of it: on a busy machine that alone halves the emulator's
    calls/s. ``nice`` then sets the autogroup's nice too, since a task's nice only counts
    within its autogroup.
    """

    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
                fh.write(str(nice))

    return setup


class Server:
    """One server process, started fresh and stopped (SIGTERM, then SIGKILL) by this script.

    It runs in its own session (see :func:`child_setup`), so a wrapper that must clean up after
    this script (as the pytest test does on a timeout) stops it by the pid printed at start.
    """

    def __init__(self, name: str, argv: list[str], cpu: int | None, nice: int = 0) -> None:
        self.name = name
        self.argv = argv
        self.cpu = cpu
        self.nice = nice
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self._log: IO[str] = tempfile.TemporaryFile("w+")  # closed in stop()

    @property
    def pid(self) -> int:
        """The server's process id (its CPU time is read from /proc/PID/stat)."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        """The endpoint URL for SDK clients."""
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, stdout: IO[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=self._log,
            text=True,
            # Own session, hence own scheduler autogroup: see child_setup().
            start_new_session=True,
            preexec_fn=child_setup(self.cpu, self.nice),  # this script runs no threads
        )

    def start(self, limit_s: float = 60.0) -> None:
        """Start the process and return once it serves requests.

        :raises RuntimeError: when it exits or does not become ready within ``limit_s``
        """
        raise NotImplementedError

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server wrote to stderr (for crash reports)."""
        self._log.flush()
        self._log.seek(0)
        return "\n".join(self._log.read().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL; always reaps the process."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        with contextlib.suppress(OSError):
            self._log.close()


class EmulatorServer(Server):
    """``python -m harness emulator --port 0``: ready once it prints ``listening on URL``."""

    def __init__(self, cpu: int | None, nice: int = 0) -> None:
        argv = [sys.executable, "-m", "harness", "emulator", "--port", "0"]
        super().__init__("emulator", argv, cpu, nice)

    def start(self, limit_s: float = 60.0) -> None:
        """Start and wait for the announcement line.

        :raises RuntimeError: when the server exits or stays silent
        """
        # stdout goes to a file, not a pipe: nothing has to drain it during the measurement
        # (a full pipe would block a chatty server) and this script needs no reader thread.
        out: IO[str] = tempfile.TemporaryFile("w+")
        try:
            self.proc = self._spawn(out)
            deadline = time.monotonic() + limit_s
            while time.monotonic() < deadline:
                out.seek(0)
                for line in out.read().splitlines():
                    if line.startswith("listening on "):
                        self.port = int(line.strip().rsplit(":", 1)[1])
                        return
                if not self.alive():
                    raise RuntimeError(f"emulator exited at start:\n{self.log_tail()}")
                time.sleep(0.02)
            raise RuntimeError(f"emulator did not announce itself within {limit_s:.0f} s")
        finally:
            out.close()  # the child keeps its own descriptor


class MotoServer(Server):
    """``moto_server -p PORT`` on a free port: ready once it answers HTTP."""

    def __init__(self, cpu: int | None, nice: int = 0) -> None:
        exe = Path(sys.executable).parent / "moto_server"
        found = str(exe) if exe.exists() else shutil.which("moto_server")
        if found is None:
            raise RuntimeError("moto_server not found (install moto[server])")
        port = _free_port()
        super().__init__("moto", [found, "-H", "127.0.0.1", "-p", str(port)], cpu, nice)
        self.port = port

    def start(self, limit_s: float = 60.0) -> None:
        """Start and poll until an HTTP request gets any answer.

        :raises RuntimeError: when the server exits or never answers
        """
        self.proc = self._spawn(self._log)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"moto_server exited at start:\n{self.log_tail()}")
            if _answers_http(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"moto_server did not answer within {limit_s:.0f} s")


def _free_port() -> int:
    """A TCP port free on loopback right now (moto_server cannot pick one itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_http(port: int) -> bool:
    """True when something on ``port`` answers an HTTP request with a status line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def make_server(name: str, cpu: int | None, nice: int = 0) -> Server:
    """A not yet started server by name."""
    return EmulatorServer(cpu, nice) if name == "emulator" else MotoServer(cpu, nice)


# ------------------------------------------------------------------------------- SDK checks
@dataclass(slots=True)
class SdkCheck:
    """Whether one real boto3 call of an operation succeeded against a server."""

    ok: bool
    detail: str


def sdk_check(url: str, operation: str) -> SdkCheck:
    """Call ``operation`` once with boto3 (no retries) and say whether it worked."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",  # neither server verifies signatures
        region_name="us-east-1",
    )
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30)
    try:
        if operation == "CreateThing":
            iot = session.client("iot", endpoint_url=url, config=config)
            out = iot.create_thing(thingName=f"sdk-check-{time.monotonic_ns()}")
            return SdkCheck(True, f"thingArn={out.get('thingArn')}")
        gg = session.client("greengrassv2", endpoint_url=url, config=config)
        out = gg.create_deployment(
            targetArn="arn:aws:iot:us-east-1:123456789012:thinggroup/sdk-check",
            components={"com.example.app": {"componentVersion": "1.0.0"}},
        )
        return SdkCheck(True, f"deploymentId={out.get('deploymentId')}")
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return SdkCheck(False, f"HTTP {status}: {exc}")
    except BotoCoreError as exc:
        return SdkCheck(False, f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------ measurements
@dataclass(slots=True)
class Run:
    """One measured (round, server, operation) window, as reported by the load generator."""

    round: int
    server: str
    operation: str
    calls: int
    wall_s: float
    client_cpu_s: float
    client_wait_s: float | None
    server_cpu_s: float | None
    server_core_idle_s: float | None
    cpus: int  # CPUs the idle time covers (1 when pinned)
    pinned: bool
    statuses: dict[str, int]
    errors: dict[str, int]
    samples: list[str]
    connects: int
    connect_errors: dict[str, int]
    warmup_statuses: dict[str, int]
    loop: str

    @property
    def calls_per_s(self) -> float:
        """Calls completed per wall-clock second."""
        return self.calls / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def non_2xx(self) -> int:
        """Calls without a 2xx answer, transport failures included (must be 0)."""
        ok = sum(n for s, n in self.statuses.items() if 200 <= int(s) < 300)
        return self.calls - ok

    @property
    def server_us_per_call(self) -> float | None:
        """Server CPU (user + system, all threads) per call, in µs."""
        return None if self.server_cpu_s is None else self.server_cpu_s / self.calls * 1e6

    @property
    def client_us_per_call(self) -> float:
        """Load generator CPU per call, in µs."""
        return self.client_cpu_s / self.calls * 1e6

    @property
    def server_share(self) -> float | None:
        """Share of one CPU the server used over the window."""
        return None if self.server_cpu_s is None else self.server_cpu_s / self.wall_s

    @property
    def client_share(self) -> float:
        """Share of one CPU the load generator used (near 1.0: the client was the limit)."""
        return self.client_cpu_s / self.wall_s

    @property
    def server_core_idle(self) -> float | None:
        """Share of the window the server's (pinned) CPU was idle; ``None`` when not pinned.

        Well above zero means the server was not the bottleneck: it waited for requests, so the
        load generator (its CPU cost or the latency of getting scheduled) limited calls/s.
        """
        if not self.pinned or self.server_core_idle_s is None:
            return None
        return min(1.0, self.server_core_idle_s / self.wall_s)

    @property
    def client_wait_share(self) -> float | None:
        """Share of the window the load generator was runnable but waiting for its CPU."""
        return None if self.client_wait_s is None else self.client_wait_s / self.wall_s

    @property
    def server_waited(self) -> bool:
        """True when the server's CPU sat idle for a good part of the window (pinned runs).

        Then the server waited for requests and calls/s is a lower bound for it.
        """
        idle = self.server_core_idle
        return idle is not None and idle >= SERVER_IDLE_BOUND

    @property
    def foreign_share(self) -> float | None:
        """CPU share other processes took from the server's CPU over the window (approximate).

        Pinned: the busy share of the server's CPU (1 - idle) minus the server's own share. Not
        pinned: the same over all CPUs, minus the load generator too. A high figure means
        calls/s understates the server (trust the CPU µs per call instead).
        """
        if self.server_core_idle_s is None or self.server_cpu_s is None:
            return None
        busy = self.cpus * self.wall_s - self.server_core_idle_s
        foreign = busy - self.server_cpu_s - (0.0 if self.pinned else self.client_cpu_s)
        return max(0.0, foreign / self.wall_s)

    def summary(self) -> dict[str, Any]:
        """The raw record plus the derived figures, for --json."""
        return asdict(self) | {
            "calls_per_s": self.calls_per_s,
            "non_2xx": self.non_2xx,
            "server_cpu_us_per_call": self.server_us_per_call,
            "client_cpu_us_per_call": self.client_us_per_call,
            "server_cpu_share": self.server_share,
            "client_cpu_share": self.client_share,
            "client_wait_share": self.client_wait_share,
            "server_cpu_idle_share": self.server_core_idle,
            "server_waited": self.server_waited,
            "foreign_cpu_share_on_server_cpu": self.foreign_share,
        }


@dataclass(slots=True)
class Options:
    """The command line, resolved."""

    calls: int
    warmup: int
    connections: int
    rounds: int
    limit_s: float
    json_path: Path | None
    pin: bool
    nice: int
    quick: bool


@dataclass(slots=True)
class Report:
    """Everything one benchmark run found."""

    options: Options
    pinning: Pinning
    runs: list[Run] = field(default_factory=list)
    checks: dict[str, dict[str, SdkCheck]] = field(default_factory=dict)
    not_implemented: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # anything that makes the run invalid
    server_pids: list[int] = field(default_factory=list)


def run_loadgen(server: Server, operation: str, opts: Options, cpu: int | None) -> dict[str, Any]:
    """Run ``perf/_loadgen.py`` against ``server`` in a child process; its JSON result."""
    argv = [
        sys.executable,
        str(LOADGEN),
        "--port",
        str(server.port),
        "--operation",
        operation,
        "--calls",
        str(opts.calls),
        "--warmup",
        str(opts.warmup),
        "--connections",
        str(opts.connections),
        "--server-pid",
        str(server.pid),
        "--limit-s",
        str(opts.limit_s),
    ]
    if server.cpu is not None:
        argv += ["--server-cpu", str(server.cpu)]
    # The limit is enforced inside the generator (per batch); this one only guards a hang.
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=2 * opts.limit_s + 30,
        check=False,
        start_new_session=True,  # its own autogroup too, like the servers
        preexec_fn=child_setup(cpu, opts.nice),
    )
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or done.stdout)[-2000:]
        return {"error": f"load generator exited {done.returncode}: {tail}"}
    return result


def measure(server: Server, operation: str, round_no: int, opts: Options, report: Report) -> None:
    """Measure one operation against a running server and add the run to ``report``."""
    out = run_loadgen(server, operation, opts, report.pinning.client)
    if "error" in out:
        report.problems.append(f"{server.name} {operation} round {round_no}: {out['error']}")
        return
    run = Run(
        round=round_no,
        server=server.name,
        operation=operation,
        calls=out["calls"],
        wall_s=out["wall_s"],
        client_cpu_s=out["client_cpu_s"],
        client_wait_s=out["client_wait_s"],
        server_cpu_s=out["server_cpu_s"],
        server_core_idle_s=out["server_core_idle_s"],
        cpus=1 if server.cpu is not None else os.cpu_count() or 1,
        pinned=server.cpu is not None,
        statuses=out["statuses"],
        errors=out["errors"],
        samples=out["samples"],
        connects=out["connects"],
        connect_errors=out["connect_errors"],
        warmup_statuses=out["warmup_statuses"],
        loop=out["loop"],
    )
    report.runs.append(run)
    if run.non_2xx:
        report.problems.append(
            f"{server.name} {operation} round {round_no}: {run.non_2xx} of {run.calls} calls "
            f"not 2xx (statuses {run.statuses}, errors {run.errors}); e.g. {run.samples[:1]}"
        )
    expected = str(EXPECTED_STATUS[operation])
    if not run.non_2xx and set(run.statuses) != {expected}:
        print(
            f"  note: {server.name} {operation} answered {run.statuses}, documented {expected}",
            flush=True,
        )
    if not server.alive():
        report.problems.append(
            f"{server.name} died during {operation} round {round_no}:\n{server.log_tail()}"
        )


def server_session(name: str, round_no: int, opts: Options, report: Report) -> None:
    """Start one server, check both operations with boto3, measure them, stop the server."""
    server = make_server(name, report.pinning.server, opts.nice)
    try:
        started = time.monotonic()
        server.start()
        report.server_pids.append(server.pid)
        print(
            f"round {round_no + 1}: {name} pid {server.pid} on {server.url} "
            f"(ready in {time.monotonic() - started:.1f} s)",
            flush=True,
        )
        for operation in OPERATIONS:
            check = sdk_check(server.url, operation)
            first = operation not in report.checks.setdefault(name, {})
            report.checks[name][operation] = check
            if not check.ok:
                if name == "moto":
                    # moto's gaps are expected: report them and measure the emulator alone.
                    report.not_implemented.setdefault(name, {})[operation] = check.detail
                    if first:
                        print(f"  moto {operation}: not implemented ({check.detail[:120]})")
                    continue
                report.problems.append(f"emulator {operation}: boto3 call failed: {check.detail}")
            elif first:
                print(f"  boto3 {operation} OK ({check.detail})", flush=True)
            measure(server, operation, round_no, opts, report)
            last = report.runs[-1] if report.runs else None
            if last is not None and (last.server, last.operation, last.round) == (
                name,
                operation,
                round_no,
            ):
                print(
                    f"  {operation:<17} {last.calls_per_s:>7,.0f}/s  server "
                    f"{_us(last.server_us_per_call)} µs/call ({_pct(last.server_share)} CPU, "
                    f"foreign {_pct(last.foreign_share)})  client "
                    f"{last.client_us_per_call:,.0f} µs/call ({_pct(last.client_share)} CPU, "
                    f"wait {_pct(last.client_wait_share)})  non-2xx {last.non_2xx}",
                    flush=True,
                )
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        report.problems.append(f"{name} round {round_no}: {exc}")
    finally:
        server.stop()


def rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` rotated left by ``by`` (round r starts with server r mod n)."""
    k = by % len(items)
    return [*items[k:], *items[:k]]


# ---------------------------------------------------------------------------------- summary
@dataclass(slots=True)
class Median:
    """Medians over the rounds of one (server, operation)."""

    rounds: int
    calls_per_s: float
    calls_per_s_min: float
    calls_per_s_max: float
    server_us_per_call: float | None
    client_us_per_call: float
    server_share: float | None
    client_share: float
    client_wait_share: float | None
    server_waited_rounds: int
    foreign_share: float | None
    idle_share: float | None
    non_2xx: int


def medians(runs: Sequence[Run]) -> Median:
    """Medians (and the calls/s range) of several runs of one (server, operation)."""
    rates = [r.calls_per_s for r in runs]
    server_us = [r.server_us_per_call for r in runs if r.server_us_per_call is not None]
    server_share = [r.server_share for r in runs if r.server_share is not None]
    foreign = [r.foreign_share for r in runs if r.foreign_share is not None]
    waits = [r.client_wait_share for r in runs if r.client_wait_share is not None]
    idle = [r.server_core_idle for r in runs if r.server_core_idle is not None]
    return Median(
        rounds=len(runs),
        calls_per_s=statistics.median(rates),
        calls_per_s_min=min(rates),
        calls_per_s_max=max(rates),
        server_us_per_call=statistics.median(server_us) if server_us else None,
        client_us_per_call=statistics.median(r.client_us_per_call for r in runs),
        server_share=statistics.median(server_share) if server_share else None,
        client_share=statistics.median(r.client_share for r in runs),
        foreign_share=statistics.median(foreign) if foreign else None,
        client_wait_share=statistics.median(waits) if waits else None,
        server_waited_rounds=sum(r.server_waited for r in runs),
        idle_share=statistics.median(idle) if idle else None,
        non_2xx=sum(r.non_2xx for r in runs),
    )


def _ratios_by_round(runs: Sequence[Run], operation: str, rounds: int) -> list[float]:
    """emulator/moto calls/s of ``operation`` within each round that measured both."""
    out: list[float] = []
    for rnd in range(rounds):
        pair = {r.server: r for r in runs if (r.operation, r.round) == (operation, rnd)}
        if "emulator" in pair and "moto" in pair:
            out.append(pair["emulator"].calls_per_s / pair["moto"].calls_per_s)
    return out


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def summarize(report: Report) -> dict[str, Any]:
    """Print the table and the ratio lines; return the JSON-ready summary."""
    table: dict[str, dict[str, Median]] = {}
    for name in SERVERS:
        for operation in OPERATIONS:
            runs = [r for r in report.runs if (r.server, r.operation) == (name, operation)]
            if runs:
                table.setdefault(name, {})[operation] = medians(runs)

    print()
    print(
        f"medians over {report.options.rounds} round(s); {report.options.calls:,} calls per run "
        f"after {report.options.warmup:,} warm-up, {report.options.connections} connections"
    )
    header = (
        f"{'server':<9} {'operation':<17} {'calls/s':>8} {'(min-max)':>15} "
        f"{'server µs/call':>14} {'server CPU':>10} {'foreign':>7} {'idle':>5} "
        f"{'client µs/call':>14} {'client CPU':>10} {'wait':>5} {'non-2xx':>7}"
    )
    print(header)
    print("-" * len(header))
    for name in SERVERS:
        for operation in OPERATIONS:
            m = table.get(name, {}).get(operation)
            if m is None:
                why = (
                    "not implemented"
                    if operation in report.not_implemented.get(name, {})
                    else "no valid run"
                )
                print(f"{name:<9} {operation:<17} {why}")
                continue
            span = f"({m.calls_per_s_min:,.0f}-{m.calls_per_s_max:,.0f})"
            print(
                f"{name:<9} {operation:<17} {m.calls_per_s:>8,.0f} {span:>15} "
                f"{_us(m.server_us_per_call):>14} {_pct(m.server_share):>10} "
                f"{_pct(m.foreign_share):>7} {_pct(m.idle_share):>5} "
                f"{m.client_us_per_call:>14,.0f} "
                f"{_pct(m.client_share):>10} {_pct(m.client_wait_share):>5} {m.non_2xx:>7}"
            )
    print(
        "server/client CPU: share of one CPU used over the measured window. On the server's CPU:"
        "\nforeign = taken by other processes (noise), idle = unused (the server waited for "
        "requests).\nwait: share of the window the load generator was runnable but waiting "
        "for its CPU."
    )
    print()
    ratios: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        ours = table.get("emulator", {}).get(operation)
        moto = table.get("moto", {}).get(operation)
        if ours is None:
            print(f"{operation}: emulator: no valid run")
            continue
        if moto is None:
            why = (
                "not implemented"
                if operation in report.not_implemented.get("moto", {})
                else "no valid run"
            )
            print(f"{operation}: emulator {ours.calls_per_s:,.0f}/s; moto: {why}")
            ratios[operation] = {"moto": why}
            continue
        rate_ratio = ours.calls_per_s / moto.calls_per_s
        by_round = _ratios_by_round(report.runs, operation, report.options.rounds)
        entry: dict[str, Any] = {"calls_per_s": rate_ratio, "calls_per_s_by_round": by_round}
        print(
            f"{operation}: emulator {ours.calls_per_s:,.0f}/s vs moto {moto.calls_per_s:,.0f}/s "
            f"= {rate_ratio:.1f}x"
            + (f"  (by round: {', '.join(f'{x:.1f}x' for x in by_round)})" if by_round else "")
        )
        if ours.server_us_per_call and moto.server_us_per_call:
            cpu_ratio = ours.server_us_per_call / moto.server_us_per_call
            entry["server_cpu_per_call"] = cpu_ratio
            print(
                f"  server CPU per call: emulator {ours.server_us_per_call:,.0f} µs vs moto "
                f"{moto.server_us_per_call:,.0f} µs = {cpu_ratio:.3f}x "
                f"(moto spends {1 / cpu_ratio:.1f}x more)"
            )
            # What one whole server CPU would sustain: the noise-resistant form of the ratio.
            print(
                f"  calls per second of server CPU (1e6 / µs per call): emulator "
                f"{1e6 / ours.server_us_per_call:,.0f} vs moto {1e6 / moto.server_us_per_call:,.0f}"
                f" = {1 / cpu_ratio:.1f}x"
            )
        ratios[operation] = entry
        if operation == "CreateThing":
            verdict = "met" if rate_ratio >= TARGET_RATIO else "NOT met"
            print(f"  target >= {TARGET_RATIO:.0f}x moto's CreateThing calls/s: {verdict}")
    noisy: list[str] = []
    for name, ops in table.items():
        for operation, m in ops.items():
            if m.server_waited_rounds:
                print(
                    f"caution: {name} {operation}: the server's CPU was idle >= "
                    f"{SERVER_IDLE_BOUND:.0%} of the window in {m.server_waited_rounds} of "
                    f"{m.rounds} round(s): the server waited for the load generator, calls/s "
                    "is a lower bound there"
                )
            if m.foreign_share is not None and m.foreign_share >= BUSY_FOREIGN_SHARE:
                noisy.append(f"{name} {operation} {m.foreign_share:.0%}")
    if noisy:
        print(
            "caution: other processes took a large share of the server's CPU ("
            + ", ".join(noisy)
            + "): calls/s moved with that load and the calls/s ratio is only indicative; the "
            "CPU-per-call ratio is the stable figure (or rerun on a quieter machine, or with "
            "--nice -10)."
        )
    return {
        "medians": {n: {o: asdict(m) for o, m in ops.items()} for n, ops in table.items()},
        "ratios_emulator_over_moto": ratios,
    }


# ------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> Options:
    """The command line as :class:`Options` (``--quick`` shrinks the defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, help="measured calls per run (default 5000)")
    parser.add_argument("--warmup", type=int, help="warm-up calls per run (default 500)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--rounds", type=int, help="rounds in rotated server order (default 3)")
    parser.add_argument(
        "--limit-s", type=float, help="give up a run after this (default 300 s, quick 30 s)"
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="write all numbers here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run servers and load generator at this nice value (e.g. -10 on a shared machine; "
        "negative values need root or CAP_SYS_NICE)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts, 1 round (for CI)")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    opts = Options(
        calls=args.calls or (300 if quick else 5000),
        warmup=args.warmup if args.warmup is not None else (50 if quick else 500),
        connections=args.connections,
        rounds=args.rounds or (1 if quick else 3),
        limit_s=args.limit_s or (30.0 if quick else 300.0),
        json_path=args.json_path,
        pin=not args.no_pin,
        nice=args.nice,
        quick=quick,
    )
    if opts.calls < 1 or opts.connections < 1 or opts.rounds < 1 or opts.warmup < 0:
        parser.error("--calls, --connections and --rounds must be positive")
    return opts


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop the servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous: Callable[[int, FrameType | None], Any] | int | None = signal.signal(
        signal.SIGTERM, handler
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every answer was 2xx and every emulator run completed."""
    opts = parse_args(argv)
    pinning = Pinning.choose(opts.pin)
    if pinning.client is not None:
        os.sched_setaffinity(0, {pinning.client})  # this script idles; keep it off the server's CPU
    report = Report(opts, pinning)
    print(
        f"emulator vs moto: {os.cpu_count()} CPUs; {pinning.describe()}; "
        f"Python {platform.python_version()}",
        flush=True,
    )
    if opts.nice:
        # Fail early (and say so) where negative nice values are not allowed.
        try:
            os.setpriority(os.PRIO_PROCESS, 0, opts.nice)
            print(f"nice {opts.nice} for the servers and the load generator", flush=True)
        except PermissionError:
            print(f"cannot set nice {opts.nice} (needs CAP_SYS_NICE): running at nice 0")
            opts.nice = 0
    started = time.monotonic()
    try:
        with sigterm_as_exit():
            for round_no in range(opts.rounds):
                for name in rotated(SERVERS, round_no):
                    server_session(name, round_no, opts, report)
    except (KeyboardInterrupt, SystemExit):
        print("interrupted: the servers were stopped", flush=True)
        raise
    summary = summarize(report)
    for problem in report.problems:
        print(f"INVALID: {problem}")
    valid = not report.problems and any(r.server == "emulator" for r in report.runs)
    print(f"{'valid' if valid else 'INVALID'} run, {time.monotonic() - started:.0f} s")
    if opts.json_path is not None:
        data = {
            "options": asdict(opts) | {"json_path": str(opts.json_path)},
            "machine": {
                "cpus": os.cpu_count(),
                "pinning": asdict(pinning),
                "python": platform.python_version(),
                "clock_ticks_per_s": os.sysconf("SC_CLK_TCK"),
            },
            "runs": [r.summary() for r in report.runs],
            "sdk_checks": {
                n: {o: asdict(c) for o, c in ops.items()} for n, ops in report.checks.items()
            },
            "not_implemented": report.not_implemented,
            "problems": report.problems,
            "valid": valid,
            "server_pids": report.server_pids,
        } | summary
        opts.json_path.write_text(json.dumps(data, indent=2))
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
