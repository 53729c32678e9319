"""``harness run`` started far above the quota of a real ``harness emulator --throttle aws``.

Kept short for ``make test``: CreateThingGroup (quota 25 TPS), 500 items at ten times the quota.
The 3,000-item CreateThing figures (10x and the default rate) come from
``perf/throttle_storm.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}
ITEMS, QUOTA = 500, 25.0


@pytest.fixture
def throttling_emulator(tmp_path: Path) -> Iterator[str]:
    """``harness emulator --throttle aws`` in a child process; yields its URL."""
    with (
        (tmp_path / "emulator.err").open("w") as err,
        subprocess.Popen(
            [sys.executable, "-m", "harness", "emulator", "--port", "0", "--throttle", "aws"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on http://127.0.0.1:"), line
            yield line.removeprefix("listening on ")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def run(tmp_path: Path, job: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    (tmp_path / "job.yaml").write_text(job)
    summary = tmp_path / "summary.json"
    command = [sys.executable, "-m", "harness", "run", str(tmp_path / "job.yaml")]
    command += ["--summary", str(summary), "--no-progress", *args]
    result = subprocess.run(
        command, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300, check=False
    )
    data = json.loads(summary.read_text()) if summary.exists() else None
    return result, data


def emulator_counts(url: str, operation: str) -> tuple[int, int]:
    with urllib.request.urlopen(f"{url}/_harness/stats", timeout=30) as response:
        op = json.loads(response.read())["operations"][operation]
    return int(op["requests"]), int(op["throttles"])


STORM = f"""\
name: storm
concurrency: 16
steps:
  - name: groups
    service: iot
    operation: CreateThingGroup
    items: {{count: {ITEMS}}}
    params: {{thingGroupName: "storm-{{{{ index }}}}"}}
"""


def test_ten_times_the_quota_loses_no_item_and_few_attempts_are_throttled(
    tmp_path: Path, throttling_emulator: str
) -> None:
    result, summary = run(
        tmp_path,
        STORM,
        "--endpoint",
        throttling_emulator,
        "--rate",
        f"CreateThingGroup={QUOTA * 10:g}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["steps"]["groups"] == {"ok": ITEMS, "failed": 0, "skipped": 0}
    requests, throttles = emulator_counts(throttling_emulator, "iot.CreateThingGroup")
    assert requests == ITEMS + throttles  # every throttled attempt was retried, none lost
    assert 0 < throttles < 0.10 * requests, (throttles, requests)
    # The rate came down to the quota and stayed near it.
    rate = summary["rates"]["iot.CreateThingGroup"]["rate"]
    assert 0.5 * QUOTA <= rate <= 1.5 * QUOTA, rate
    achieved = summary["operations"][0]["calls_per_s"]
    assert 0.8 * QUOTA <= achieved <= 1.2 * QUOTA, achieved


TINY = """\
name: tiny
steps:
  - name: things
    service: iot
    operation: CreateThing
    items: {count: 1}
    params: {thingName: "slow-thing"}
"""


@pytest.mark.parametrize("rate", ["0.01", "0.3", "1e-6"])
def test_any_positive_rate_works(tmp_path: Path, rate: str) -> None:
    # Below the adaptive floor of 0.5 TPS this crashed after the journal was created. One item:
    # the bucket's first token is free, so even 1e-6 TPS finishes at once.
    result, summary = run(tmp_path, TINY, "--rate", f"CreateThing={rate}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert summary["steps"]["things"]["ok"] == 1
    assert summary["rates"]["iot.CreateThing"]["rate"] == pytest.approx(float(rate))
