"""The engine-vs-clients benchmark runs end to end (quick mode) and every call succeeds.

No timing is asserted: the targets (engine >= 0.9x plain aiobotocore, >= 1.25x boto3 threads)
are measured by ``perf/engine_vs_clients.py`` and read by people, not unit-tested. What is
asserted is that the benchmark is *valid*: the emulator starts, every approach completes every
call on its first attempt, the ratio lines are printed, and no process outlives the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "engine_vs_clients.py"
LIMIT_S = 55.0  # the quick run takes a few seconds; pytest-timeout (120 s) is the backstop
APPROACHES = {"engine", "engine+journal", "engine+fast", "aiobotocore", "boto3-threads"}


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def _workers_of(url: str) -> list[int]:
    """Pids of this benchmark's worker processes for the emulator at ``url`` (still running).

    Workers run in sessions of their own, so they are found by their command line: this script,
    ``--worker`` and this run's emulator URL (a fresh port per run), and nothing else.
    """
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if str(SCRIPT).encode() in argv and b"--worker" in argv and url.encode() in argv:
            found.append(int(entry))
    return [pid for pid in found if _alive(pid)]


def _stop(pids: list[int]) -> None:
    """SIGKILL each of the given pids that still runs (only those)."""
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_quick_benchmark_is_valid(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    # Its own session, so that a timeout can end the script; the emulator and the workers have
    # sessions of their own and are found (and stopped) by pid / command line afterwards.
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out_json)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = ""
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGTERM)  # the script stops its emulator on SIGTERM
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    finally:
        announced = [int(p) for p in re.findall(r"\bemulator pid (\d+)\b", output or "")]
        urls = re.findall(r"\bemulator pid \d+ on (http://\S+)", output or "")
        time.sleep(0.1)
        leftovers = [pid for pid in announced if _alive(pid)]
        leftovers += [pid for url in urls for pid in _workers_of(url)]
        _stop(leftovers)

    assert not timed_out, f"the quick benchmark did not finish in {LIMIT_S:.0f} s:\n{output}"
    assert proc.returncode == 0, output
    assert announced, f"the benchmark did not announce its emulator:\n{output}"
    assert leftovers == [], f"processes left behind: {leftovers}\n{output}"
    # The two headline ratios, printed in the same run, with a verdict (not asserted).
    for baseline, target in (("aiobotocore", r"0\.9"), ("boto3-threads", r"1\.25")):
        pattern = rf"^engine/{baseline} = [\d.]+x \(target >= {target}x\): (PASS|BELOW)"
        assert re.search(pattern, output, re.MULTILINE), output
    assert "does not limit the benchmark" in output  # the quota override is stated

    data = json.loads(out_json.read_text())
    assert data["valid"] is True, data["problems"]
    assert data["problems"] == []
    assert {run["approach"] for run in data["runs"]} == APPROACHES
    for run in data["runs"]:
        assert run["ok"] == run["calls"] > 0, run
        assert run["attempts"] == run["calls"], run
        assert run["errors"] == {}, run
        assert run["wall_s"] > 0, run
        if run["approach"].startswith("engine"):
            assert run["bucket_rate"] >= 1e9, run  # the quota override was in effect
    assert set(data["ratios"]) >= {"engine/aiobotocore", "engine/boto3-threads"}
    assert not _alive(data["server_pid"])
