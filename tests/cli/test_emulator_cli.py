"""`harness emulator` as a user runs it: announces its URL, serves, stops on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on http://127.0.0.1:"), (
        line,
        proc.stderr and proc.stderr.read(),
    )
    return proc, line.removeprefix("listening on ")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    proc, url = start("--throttle", "aws", "--latency-ms", "1:2", "--seed", "3")
    try:
        with urllib.request.urlopen(url + "/_harness/stats", timeout=10) as resp:
            stats = json.loads(resp.read())
        assert stats["settings"]["throttle"] == "aws"
        assert stats["settings"]["latency_ms"] == [1.0, 2.0]
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_bad_flag_values_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "emulator", "--fault-rate", "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "fault_rate" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "harness", "emulator", "--latency-ms", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "latency" in done.stderr
