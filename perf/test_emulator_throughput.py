"""The emulator-vs-moto benchmark runs end to end (quick mode) and every answer is 2xx.

No timing is asserted: performance targets are measured by ``perf/emulator_vs_moto.py`` and
read by people, not unit-tested. What is asserted is that the benchmark is *valid*: both servers
start, the load generator completes every call with a 2xx answer, the ratio line is printed, and
no server process outlives the run.
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

import pytest

SCRIPT = Path(__file__).resolve().parent / "emulator_vs_moto.py"
LIMIT_S = 50.0  # the quick run takes a few seconds; pytest-timeout (120 s) is the backstop


def _moto_server_installed() -> bool:
    exe = Path(sys.executable).parent / "moto_server"
    return exe.exists()


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def _stop(pids: list[int]) -> None:
    """SIGKILL each server pid the benchmark announced that still runs (only those)."""
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not _moto_server_installed(), reason="moto[server] is not installed")
def test_quick_benchmark_is_valid(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    # The benchmark runs in a session of its own so that a timeout can end it and its load
    # generator together; its servers have sessions of their own, so they are also stopped by
    # the pids it prints ("pid N") should it fail to stop them itself.
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out_json)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = ""
    try:
        output, _ = proc.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the script stops its servers on SIGTERM
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        pytest.fail(f"the quick benchmark did not finish in {LIMIT_S:.0f} s:\n{output}")
    finally:
        announced = [int(p) for p in re.findall(r"\bpid (\d+)\b", output or "")]
        time.sleep(0.1)
        leftovers = [pid for pid in announced if _alive(pid)]
        _stop(leftovers)

    assert proc.returncode == 0, output
    assert leftovers == [], f"server processes left behind: {leftovers}\n{output}"
    # The headline: CreateThing measured against both servers in the same run.
    assert re.search(
        r"^CreateThing: emulator [\d,]+/s vs moto [\d,]+/s = [\d.]+x", output, re.MULTILINE
    ), output
    assert re.search(r"^CreateDeployment: emulator [\d,]+/s", output, re.MULTILINE), output

    data = json.loads(out_json.read_text())
    assert data["valid"] is True
    assert data["problems"] == []
    servers = {(run["server"], run["operation"]) for run in data["runs"]}
    assert {("emulator", "CreateThing"), ("emulator", "CreateDeployment")} <= servers
    assert ("moto", "CreateThing") in servers
    for run in data["runs"]:
        assert run["non_2xx"] == 0, run
        assert sum(run["statuses"].values()) == run["calls"], run
        assert all(200 <= int(status) < 300 for status in run["statuses"]), run
    assert data["server_pids"], "the benchmark did not report its server pids"
    assert not [pid for pid in data["server_pids"] if _alive(pid)]
