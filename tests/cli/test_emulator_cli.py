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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--fault-rate", "3"],
            "--fault-rate 3.0: expected a finite number, at least 0 and at most 1",
        ),
        (["--fault-rate", "nan"], "--fault-rate nan: expected a finite number"),
        (["--latency-ms", "fast"], "--latency-ms 'fast': expected MS or MIN:MAX"),
        (["--latency-ms", "inf"], "--latency-ms inf: expected a finite number"),
        (["--latency-ms", "5:inf"], "--latency-ms inf: expected a finite number"),
        (["--latency-ms", "60001"], "at most 60000"),
        (["--latency-ms", "9:3"], "expected MIN <= MAX"),
        (["--proton-delay", "inf"], "--proton-delay inf: expected a finite number"),
        (["--proton-delay", "-1"], "--proton-delay -1.0"),
        (["--header-timeout", "inf"], "--header-timeout inf: expected seconds"),
        (["--header-timeout", "0"], "--header-timeout 0.0: expected seconds, more than 0"),
        (["--idle-timeout", "-5"], "--idle-timeout -5.0: expected seconds"),
        (["--max-connections", "0"], "--max-connections 0: expected a whole number >= 1"),
        (["--max-body", "-1"], "--max-body -1: expected a whole number >= 0"),
    ],
)
def test_bad_flag_values_exit_2(args: list[str], expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""  # it never started listening
