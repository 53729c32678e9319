"""Clean stops with real processes and real signals: SIGINT and SIGTERM (exit 130/143, partial
summary, the --resume command that continues the run), a second signal and the grace period, the
embedded emulator that never outlives its parent, the journal lock, the circuit breaker against a
server that dies, refused credentials from a local server, and a journal that cannot be written.

Every wait is bounded and generous: the machine running them may be loaded.
"""

from __future__ import annotations

import http.server
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.emulator import EmulatorThread
from harness.engine import read_journal

ACCOUNT = "123456789012"
SLOW = 120.0  # seconds: the bound of every wait for a process


class Harness:
    """``python -m harness ARGS`` in the background, in its own session (as a shell job is);
    its output (stdout and stderr) is collected line by line."""

    def __init__(self, *args: str, cwd: Path, preexec: Callable[[], None] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = SLOW) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None:
                self._reader.join(10)
                raise AssertionError(f"exited {self.proc.returncode} before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.output}")
            time.sleep(0.05)

    def children(self) -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def signal_group(self, signum: int) -> None:
        """What a Ctrl-C at the terminal does: the signal to the whole foreground group."""
        os.killpg(self.proc.pid, signum)

    def finish(self, timeout: float = SLOW) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def processes() -> Iterator[list[Harness]]:
    started: list[Harness] = []
    yield started
    for one in started:
        one.kill()


def journal_oks(path: Path) -> int:
    if not path.exists():
        return 0
    return path.read_bytes().count(b'"status":"ok"')


def ok_counts(path: Path) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for line in path.read_bytes().splitlines()[1:]:
        entry = orjson.loads(line)
        if entry["status"] == "ok":
            key = (entry["step"], entry["key"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # a zombie has exited; its parent has not reaped it yet
            return True
        time.sleep(0.05)
    return False


def resume_args(output: str) -> list[str]:
    """The arguments of the ``to continue: harness run ...`` line."""
    match = re.search(r"^to continue: (harness run .*)$", output, re.MULTILINE)
    assert match, output
    words = shlex.split(match.group(1))
    assert words[:2] == ["harness", "run"]
    return words[1:]


def job_file(tmp_path: Path, n: int, rate: int, *, groups: bool = True) -> Path:
    text = f"""\
name: stops
concurrency: 8
retries: {{max_attempts: 6, base_delay: 0.1, max_delay: 1}}
steps:
  - name: things
    service: iot
    operation: CreateThing
    items: {{count: {n}}}
    rate: {rate}
    params: {{thingName: "t-{{{{ index }}}}"}}
"""
    if groups:
        text += """\
  - name: groups
    service: iot
    operation: CreateThingGroup
    items: {count: 3}
    params: {thingGroupName: "g-{{ index }}"}
  - name: membership
    service: iot
    operation: AddThingToThingGroup
    items: {from: things}
    after: [groups]
    params: {thingName: "{{ item.thingName }}", thingGroupName: "g-{{ item.index % 3 }}"}
"""
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------- SIGINT, SIGTERM
def test_ctrl_c_finishes_the_calls_in_flight_and_prints_the_resume_command(
    tmp_path: Path, processes: list[Harness]
) -> None:
    job = job_file(tmp_path, 3000, 40)
    journal = tmp_path / "runs" / "j.jsonl"
    summary = tmp_path / "summary.json"
    run = Harness(
        "run", str(job), "--journal", str(journal), "--summary", str(summary),
        "--html", str(tmp_path / "r.html"), "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    processes.append(run)
    run.wait_for(lambda: journal_oks(journal) >= 40, "40 items journaled")
    emulators = run.children()
    assert len(emulators) == 1
    run.signal_group(signal.SIGINT)  # the emulator, in its own session, does not get it
    assert run.finish() == 130, run.output
    out = run.output
    assert "SIGINT received: no new items; the calls in flight get up to 10 s" in out
    assert "run stopped: SIGINT received;" in out
    assert "not finished stay pending (exit 130)" in out
    assert "Traceback" not in out
    assert gone(emulators[0]), "the embedded emulator outlived the run"

    document = orjson.loads(summary.read_bytes())
    assert document["stopped"] == {"cause": "signal", "reason": "SIGINT received", "exit_code": 130}
    assert document["exit_code"] == 130
    # The calls in flight finished against a live emulator: nothing failed.
    assert document["failures_total"] == 0
    done = document["steps"]["things"]["ok"]
    assert 0 < done < 3000
    assert document["pending"]["things"] == 3000 - done
    assert len(ok_counts(journal)) == journal_oks(journal)
    assert sum(s["ok"] for s in document["steps"].values()) == journal_oks(journal)
    assert resume_args(out) == [
        "run", str(job), "--summary", str(summary), "--html", str(tmp_path / "r.html"),
        "--no-progress", "--resume", "--journal", str(journal),
    ]  # fmt: skip
    assert document["resume"] == "harness " + shlex.join(resume_args(out))
    assert "SIGINT received" in (tmp_path / "r.html").read_text()
    assert journal.stat().st_mode & 0o777 == 0o600


def test_sigterm_then_resume_does_every_item_exactly_once(
    tmp_path: Path, processes: list[Harness], harness_emulator: EmulatorThread
) -> None:
    job = job_file(tmp_path, 600, 60)
    journal = tmp_path / "j.jsonl"
    args = ("run", str(job), "--endpoint", harness_emulator.url, "--journal", str(journal))
    run = Harness(*args, "--no-progress", "--concurrency", "4", cwd=tmp_path)
    processes.append(run)
    run.wait_for(lambda: journal_oks(journal) >= 50, "50 items journaled")
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 143, run.output
    assert "run stopped: SIGTERM received;" in run.output
    again = resume_args(run.output)
    assert again == [
        "run", str(job), "--endpoint", harness_emulator.url, "--concurrency", "4",
        "--no-progress", "--resume", "--journal", str(journal),
    ]  # fmt: skip
    first = journal_oks(journal)
    assert first < 1203

    resumed = Harness(*again, cwd=tmp_path)
    processes.append(resumed)
    assert resumed.finish() == 0, resumed.output
    assert f"resuming: {first} items already done are skipped" in resumed.output
    counts = ok_counts(journal)
    assert len(counts) == 600 + 3 + 600
    assert set(counts.values()) == {1}
    iot = harness_emulator.call(lambda: harness_emulator.core.state(ACCOUNT, "us-east-1", "iot"))
    assert len(iot.things) == 600


def test_a_second_signal_stops_at_once(
    tmp_path: Path, processes: list[Harness], harness_emulator: EmulatorThread
) -> None:
    harness_emulator.call(lambda: harness_emulator.core.configure({"latency_ms": [30000, 30000]}))
    job = job_file(tmp_path, 50, 100, groups=False)
    journal = tmp_path / "j.jsonl"
    run = Harness(
        "run", str(job), "--endpoint", harness_emulator.url, "--journal", str(journal),
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    processes.append(run)
    run.wait_for(lambda: "run stops against" in run.output, "the run's start")
    time.sleep(1.0)  # the first calls are on the wire, for 30 s
    run.proc.send_signal(signal.SIGINT)
    run.wait_for(lambda: "calls in flight finish" in run.output, "the stop")
    started = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, run.output
    assert time.monotonic() - started < 20  # not the 30 s the calls in flight would take
    assert "SIGINT received again: cancelling the calls in flight" in run.output
    assert "stopping now: 8 calls in flight are cancelled (pending)" in run.output
    assert journal_oks(journal) == 0 and read_journal(journal).lines == 0


def test_the_grace_period_bounds_the_wait(
    tmp_path: Path, processes: list[Harness], harness_emulator: EmulatorThread
) -> None:
    harness_emulator.call(lambda: harness_emulator.core.configure({"latency_ms": [30000, 30000]}))
    job = job_file(tmp_path, 50, 100, groups=False)
    run = Harness(
        "run", str(job), "--endpoint", harness_emulator.url, "--journal", str(tmp_path / "j"),
        "--stop-grace", "2", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    processes.append(run)
    run.wait_for(lambda: "run stops against" in run.output, "the run's start")
    time.sleep(1.0)
    started = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 143, run.output
    assert 2 <= time.monotonic() - started < 20
    assert "the calls in flight get up to 2 s to finish" in run.output
    assert "grace period of 2 s over: cancelling the calls in flight" in run.output
    assert "to continue: harness run" in run.output


def test_a_signal_during_the_preflight_sends_nothing(
    tmp_path: Path, processes: list[Harness], harness_emulator: EmulatorThread
) -> None:
    job = job_file(tmp_path, 200_000, 100, groups=False)  # a preflight of several seconds
    journal = tmp_path / "j.jsonl"
    run = Harness(
        "run", str(job), "--endpoint", harness_emulator.url, "--journal", str(journal),
        cwd=tmp_path,
    )  # fmt: skip
    processes.append(run)
    run.wait_for(journal.exists, "the journal")
    time.sleep(0.5)
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, run.output
    assert "stopped: SIGINT received before the run started; nothing was sent" in run.output
    assert not journal.exists()  # a new journal with nothing in it is not left behind
    stats = harness_emulator.call(harness_emulator.core.stats)
    assert stats["requests"] == 0


# ---------------------------------------------------------------- the embedded emulator
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_the_embedded_emulator_never_outlives_the_run(
    tmp_path: Path, processes: list[Harness], signum: int
) -> None:
    job = job_file(tmp_path, 3000, 50, groups=False)
    journal = tmp_path / "j.jsonl"
    run = Harness("run", str(job), "--journal", str(journal), "--no-progress", cwd=tmp_path)
    processes.append(run)
    run.wait_for(lambda: journal_oks(journal) >= 10, "10 items journaled")
    (emulator,) = run.children()
    run.proc.send_signal(signum)
    assert run.finish() == (-9 if signum == signal.SIGKILL else 143), run.output
    assert gone(emulator), f"the emulator {emulator} outlived its parent"


def test_the_emulator_exits_when_its_parent_pipe_closes(tmp_path: Path) -> None:
    # The portable half: the emulator watches its stdin, whose other end its parent holds.
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", "--exit-with-parent"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().startswith("listening on http://127.0.0.1:")
        assert proc.poll() is None
        proc.stdin.close()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -------------------------------------------------------------------------- journal lock
def test_a_second_run_on_a_journal_in_use_exits_2_at_once(
    tmp_path: Path, processes: list[Harness], harness_emulator: EmulatorThread
) -> None:
    job = job_file(tmp_path, 3000, 20, groups=False)
    journal = tmp_path / "j.jsonl"
    args = ("run", str(job), "--endpoint", harness_emulator.url, "--journal", str(journal))
    first = Harness(*args, "--no-progress", cwd=tmp_path)
    processes.append(first)
    first.wait_for(lambda: journal_oks(journal) >= 5, "5 items journaled")
    second = Harness(*args, "--resume", cwd=tmp_path)
    processes.append(second)
    assert second.finish() == 2, second.output
    assert second.output.strip() == (
        f"error: journal {journal} is in use by another harness run (it holds the lock); "
        "wait for that run to end, or pass another --journal"
    )
    assert first.proc.poll() is None
    first.proc.send_signal(signal.SIGTERM)
    assert first.finish() == 143


# ----------------------------------------------------------------------- circuit breaker
def start_emulator(port: int = 0) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return proc, line.removeprefix("listening on ")


def test_the_breaker_stops_a_run_whose_endpoint_died(
    tmp_path: Path, processes: list[Harness]
) -> None:
    emulator, url = start_emulator()
    try:
        job = job_file(tmp_path, 2000, 100, groups=False)
        journal = tmp_path / "j.jsonl"
        summary = tmp_path / "s.json"
        run = Harness(
            "run", str(job), "--endpoint", url, "--journal", str(journal), "--summary",
            str(summary), "--max-connection-failures", "10", "--no-progress", cwd=tmp_path,
        )  # fmt: skip
        processes.append(run)
        run.wait_for(lambda: journal_oks(journal) >= 30, "30 items journaled")
        emulator.kill()
        emulator.wait(30)
        assert run.finish() == 1, run.output
    finally:
        if emulator.poll() is None:
            emulator.kill()
        emulator.communicate()
    out = run.output
    assert re.search(r"run stopped: 10 consecutive connection failures to iot in us-east-1 "
                     r"\(last: \w+Error", out), out  # fmt: skip
    document = orjson.loads(summary.read_bytes())
    assert document["stopped"]["cause"] == "breaker"
    assert document["failures_total"] == 0
    done = journal_oks(journal)

    # The endpoint is back (empty, on the same port): the printed command finishes the job.
    port = int(url.rsplit(":", 1)[1])
    back, _ = start_emulator(port)
    try:
        resumed = Harness(*resume_args(out), cwd=tmp_path)
        processes.append(resumed)
        assert resumed.finish() == 0, resumed.output
    finally:
        back.terminate()
        back.communicate()
    counts = ok_counts(journal)
    assert len(counts) == 2000 and set(counts.values()) == {1}
    assert f"resuming: {done} items already done are skipped" in resumed.output


# ------------------------------------------------------------------ refused credentials
class _Refusing(http.server.BaseHTTPRequestHandler):
    code = "UnrecognizedClientException"
    status = 403
    seen: list[str] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).seen.append(self.path)
        body = orjson.dumps({"message": "The security token included in the request is invalid."})
        self.send_response(self.status)
        self.send_header("x-amzn-ErrorType", f"{self.code}:http://internal.amazon.com/")
        self.send_header("x-amzn-RequestId", "0000")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[tuple[str, type[_Refusing]]]:
    handler = type("Handler", (_Refusing,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "code"), [(403, "UnrecognizedClientException"), (403, "AccessDeniedException")]
)
def test_refused_credentials_stop_the_run_without_retries(
    tmp_path: Path,
    processes: list[Harness],
    refusing: tuple[str, type[_Refusing]],
    status: int,
    code: str,
) -> None:
    url, handler = refusing
    handler.status, handler.code = status, code
    job = job_file(tmp_path, 500, 1000, groups=False)
    summary = tmp_path / "s.json"
    run = Harness(
        "run", str(job), "--endpoint", url, "--journal", str(tmp_path / "j.jsonl"),
        "--summary", str(summary), "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    processes.append(run)
    assert run.finish() == 1, run.output
    assert f"run stopped: credentials refused by iot in us-east-1: {code}: The security" in (
        run.output
    )
    assert "to continue: harness run" in run.output
    assert len(handler.seen) <= 8  # the calls in flight at once; none retried, no new ones
    document = orjson.loads(summary.read_bytes())
    assert document["stopped"]["cause"] == "denied"
    assert {f["error_code"] for f in document["failures"]} == {code}
    assert all(f["attempts"] == 1 for f in document["failures"])
    assert document["failures_total"] == len(handler.seen)
    assert document["pending"]["things"] == 500 - len(handler.seen)


def test_harness_list_stops_on_refused_credentials(
    tmp_path: Path, processes: list[Harness], refusing: tuple[str, type[_Refusing]]
) -> None:
    url, handler = refusing
    run = Harness("list", "iot", "ListThings", "--endpoint", url, cwd=tmp_path)
    processes.append(run)
    assert run.finish() == 1, run.output
    assert "stopped: credentials refused by iot in us-east-1: UnrecognizedClientException" in (
        run.output
    )
    assert len(handler.seen) == 1


# ------------------------------------------------------------------ journal write errors
def test_a_journal_that_cannot_be_written_stops_the_run_cleanly(
    tmp_path: Path, processes: list[Harness], harness_emulator: EmulatorThread
) -> None:
    job = job_file(tmp_path, 1000, 1000, groups=False)
    journal = tmp_path / "j.jsonl"

    def small_files() -> None:
        # Python ignores SIGXFSZ: a write past the limit fails with EFBIG instead.
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    run = Harness(
        "run", str(job), "--endpoint", harness_emulator.url, "--journal", str(journal),
        "--no-progress", cwd=tmp_path, preexec=small_files,
    )  # fmt: skip
    processes.append(run)
    assert run.finish() == 1, run.output
    out = run.output
    assert "Traceback" not in out
    assert f"run stopped: cannot write journal {journal}: File too large; the entries" in out
    data = journal.read_bytes()
    assert data.endswith(b"\n")
    state = read_journal(journal)
    assert state.torn == 0
    recorded = state.total_done
    assert 20 < recorded < 1000

    resumed = Harness(*resume_args(out), cwd=tmp_path)
    processes.append(resumed)
    assert resumed.finish() == 0, resumed.output
    counts = ok_counts(journal)
    assert len(counts) == 1000 and set(counts.values()) == {1}


# -------------------------------------------------------- resume on the embedded emulator
@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name
)
def test_resume_on_the_embedded_emulator_continues_against_the_same_state(
    tmp_path: Path, processes: list[Harness], signum: int
) -> None:
    # Things join groups created by the first run: a resumed run against an empty emulator
    # would fail every membership ("thinggroup g-1 does not exist").
    job = job_file(tmp_path, 1500, 150)
    journal = tmp_path / "j.jsonl"
    summary = tmp_path / "s.json"
    run = Harness("run", str(job), "--journal", str(journal), "--no-progress", cwd=tmp_path)
    processes.append(run)
    run.wait_for(lambda: journal_oks(journal) >= 200, "200 items journaled")
    (emulator,) = run.children()
    run.proc.send_signal(signum)
    run.finish()
    assert gone(emulator, 60), "the embedded emulator outlived its parent"
    state_dir = tmp_path / "j.jsonl.emulator"
    assert state_dir.is_dir() and state_dir.stat().st_mode & 0o777 == 0o700
    first = journal_oks(journal)
    assert first < 3003

    resumed = Harness(
        "run", str(job), "--journal", str(journal), "--resume", "--summary", str(summary),
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    processes.append(resumed)
    assert resumed.finish() == 0, resumed.output
    document = orjson.loads(summary.read_bytes())
    assert document["failures_total"] == 0
    assert document["steps"]["membership"]["failed"] == 0
    counts = ok_counts(journal)
    assert len(counts) == 1500 + 3 + 1500
    assert set(counts.values()) == {1}
