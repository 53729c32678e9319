"""Retries that reach the server while the first attempt is still being processed.

A real ``harness emulator --latency-ms 300:500`` (every request takes 300-500 ms), behind a real
TCP proxy on 127.0.0.1 (``tests/_proxy.py``) that resets 3% of the connections right after
forwarding a request: the emulator has the request and creates the resource, the client sees
ECONNRESET and retries with the same client token while the first attempt is still in flight.
Greengrass answers RequestAlreadyInProgressException and IoT Wireless ConflictException until
the first attempt is done, then replays its answer. ``harness run`` (a child process) must
finish every item, and the emulator must hold exactly one deployment and one FUOTA task per item.
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

import boto3
import pytest
from _proxy import CuttingProxy
from botocore.config import Config

ITEMS = 1000

# One step per run, with as many workers as call slots and a rate far above what 100 calls in
# flight at 300-500 ms reach: a retry waits neither for a slot nor behind a queue at the bucket,
# so it reaches the server while the first attempt is still being processed there.
HEAD = f"""\
name: in-progress
concurrency: 100
steps:
  - name: create
    items: {{count: {ITEMS}}}
    rate: 10000
"""

STEPS = {
    "greengrassv2.CreateDeployment": """\
    service: greengrassv2
    operation: CreateDeployment
    params:
      targetArn: "arn:aws:iot:us-east-1:123456789012:thinggroup/fleet-{{ index }}"
      deploymentName: "item-{{ index }}"
""",
    "iotwireless.CreateFuotaTask": """\
    service: iotwireless
    operation: CreateFuotaTask
    params:
      Name: "item-{{ index }}"
      LoRaWAN: {RfRegion: EU868}
      FirmwareUpdateImage: "s3://firmware/fw-3.1.bin"
      FirmwareUpdateRole: "arn:aws:iam::123456789012:role/fuota"
""",
}

#: What the service answers a retry while the first attempt with its client token is in flight.
IN_PROGRESS = {
    "greengrassv2.CreateDeployment": "RequestAlreadyInProgressException",
    "iotwireless.CreateFuotaTask": "ConflictException",
}

ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}


@pytest.fixture
def slow_emulator(tmp_path: Path) -> Iterator[str]:
    """``harness emulator --latency-ms 300:500`` in a child process; yields its URL."""
    with (
        (tmp_path / "emulator.err").open("w") as err,
        subprocess.Popen(
            [sys.executable, "-m", "harness", "emulator", "--port", "0", "--latency-ms", "300:500"],
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


def client(service: str, url: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x", region_name="us-east-1"
    )
    config = Config(retries={"max_attempts": 0, "mode": "standard"}, read_timeout=30)
    return session.client(service, endpoint_url=url, config=config)


def all_pages(call: Any, key: str, token: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    while True:
        page = call(**params)
        items.extend(page[key])
        if not page.get(token):
            return items
        params[token] = page[token]


@pytest.mark.parametrize("operation", sorted(STEPS))
def test_retries_while_the_first_attempt_is_in_flight_lose_nothing(
    tmp_path: Path, slow_emulator: str, operation: str
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(HEAD + STEPS[operation])
    summary_path = tmp_path / "summary.json"
    with CuttingProxy(slow_emulator, cut_share=0.03, seed=9) as proxy:
        command = [sys.executable, "-m", "harness", "run", str(job), "--endpoint", proxy.url]
        command += ["--summary", str(summary_path), "--no-progress"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=ENV,
            cwd=tmp_path,
            timeout=600,
            check=False,
        )
        cuts, forwarded = proxy.cuts, proxy.requests
    summary = json.loads(summary_path.read_text())
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert summary["steps"]["create"] == {"ok": ITEMS, "failed": 0, "skipped": 0}
    # The proxy did cut requests (about 3% of them), and the server answered some retries
    # "still in progress": what failed items before.
    assert cuts >= 0.01 * ITEMS, (cuts, forwarded)
    with urllib.request.urlopen(f"{slow_emulator}/_harness/stats", timeout=30) as response:
        answered = json.loads(response.read())["operations"][operation]
    assert answered["errors"].get(IN_PROGRESS[operation], 0) > 0, answered
    assert summary["operations"][0]["retries"] > 0

    # Exactly one resource per item: no retry created a duplicate.
    if operation.startswith("greengrassv2"):
        listed = all_pages(
            client("greengrassv2", slow_emulator).list_deployments,
            "deployments",
            "nextToken",
            historyFilter="ALL",
            maxResults=100,
        )
        names = [d["deploymentName"] for d in listed]
    else:
        listed = all_pages(
            client("iotwireless", slow_emulator).list_fuota_tasks,
            "FuotaTaskList",
            "NextToken",
            MaxResults=250,
        )
        names = [t["Name"] for t in listed]
    assert sorted(names) == sorted(f"item-{i}" for i in range(ITEMS))
