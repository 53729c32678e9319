"""No request blocks the others: a real emulator keeps answering its health check under attack.

The audit froze ``harness emulator`` for 34 s with one Proton request (a 2,401-character S3 bucket
name) and for 14.5 s with ten 800-character managed-integrations metadata values ending in a
newline; the health check waited all that time. Here a probe thread polls ``GET /_harness/health``
back to back on its own connection, from its own process, while the test sends those requests, requests built
the same way for every body member with a pattern RE2 matches (at its longest allowed length and
at ten times it), and bodies big enough to be checked in the emulator's worker thread. The worst
gap between two health answers must stay under 100 ms.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import boto3
import pytest
from adversarial import attack_requests
from botocore.config import Config
from botocore.exceptions import ClientError

from harness.emulator._budget import INLINE_BODY_BYTES

WORST_STALL_S = 0.100


def start_emulator(stderr: IO[str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return proc, line.removeprefix("listening on ")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("emulator") / "stderr.log"
    with log.open("w") as stderr:
        proc, url = start_emulator(stderr)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=30)


# The probe runs in its own process: in this one it would also wait for the GIL while boto3
# builds requests, and measure that instead of the emulator.
PROBE = r"""
import http.client, json, sys, threading, time
host, port = sys.argv[1].removeprefix("http://").split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=120)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
answers, failures = [], []
print("probing", flush=True)
try:
    while not stop.is_set():
        conn.request("GET", "/_harness/health")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or b"ok" not in body:
            failures.append(f"{response.status} {body[:80]!r}")
        answers.append(time.perf_counter())
except OSError as exc:
    failures.append(repr(exc))
print(json.dumps({"answers": answers, "failures": failures}), flush=True)
"""


class HealthProbe:
    """Polls the health check back to back in a child process until stopped."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "probing"
        self.answers: list[float] = []
        self.failures: list[str] = []

    def stop(self) -> None:
        out, _ = self.proc.communicate("", timeout=180)
        found = json.loads(out.splitlines()[-1])
        self.answers, self.failures = found["answers"], found["failures"]

    def worst_gap(self) -> float:
        gaps = [b - a for a, b in itertools.pairwise(self.answers)]
        return max(gaps, default=float("inf"))


def client(url: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(
            parameter_validation=False,  # the emulator must judge these, not botocore
            retries={"total_max_attempts": 1},
            read_timeout=120,
            connect_timeout=10,
        ),
    )


def test_health_answers_while_adversarial_requests_are_judged(emulator: str) -> None:
    requests = attack_requests()
    assert len(requests) > 50
    clients = {service: client(emulator, service) for service, _, _ in requests}
    probe = HealthProbe(emulator)
    try:
        time.sleep(0.2)  # the probe is answered before the attack starts
        refused = 0
        for service, operation, params in requests:
            try:
                clients[service]._make_api_call(operation, params)
            except ClientError as exc:
                status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
                assert status < 500, (operation, exc.response["Error"])
                refused += 1
        time.sleep(0.2)
    finally:
        probe.stop()
    assert probe.failures == []
    assert refused >= len(requests) // 2  # the values are adversarial: most are refused
    assert len(probe.answers) > 20
    assert probe.worst_gap() < WORST_STALL_S, f"worst stall {probe.worst_gap() * 1e3:.0f} ms"


class TestBigBodies:
    """Bodies over INLINE_BODY_BYTES are checked in the worker thread, with the same answers."""

    def test_a_big_valid_request_creates_the_thing(self, aws_client: Any) -> None:
        iot = aws_client("iot")
        attributes = {f"attr{i}": "v" * 800 for i in range(40)}  # ~33 KB of JSON
        assert len(json.dumps(attributes)) > INLINE_BODY_BYTES
        iot.create_thing_type(thingTypeName="big")  # a typed thing takes up to 50 attributes
        payload = {"attributes": attributes}
        iot.create_thing(thingName="big-valid", thingTypeName="big", attributePayload=payload)
        found = iot.describe_thing(thingName="big-valid")
        assert found["attributes"] == attributes

    def test_a_big_invalid_request_names_every_broken_value(self, aws_client: Any) -> None:
        iot = aws_client("iot")
        attributes = {f"attr{i}": "v" * 799 + "\n" for i in range(40)}  # newline: off pattern
        with pytest.raises(ClientError) as caught:
            iot.create_thing(thingName="big-invalid", attributePayload={"attributes": attributes})
        error = caught.value.response["Error"]
        assert error["Code"] == "InvalidRequestException"
        assert "validation errors detected" in error["Message"]
        with pytest.raises(ClientError):
            iot.describe_thing(thingName="big-invalid")

    def test_a_big_malformed_body_is_a_serialization_error(self, harness_endpoint: str) -> None:
        import urllib.error
        import urllib.request

        body = b'{"attributePayload": {"attributes": {' + b'"a": "b", ' * 4000 + b"}"
        request = urllib.request.Request(
            f"{harness_endpoint}/things/malformed",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/iot/"
                "aws4_request, SignedHeaders=host, Signature=x",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=60)
        with caught.value as answer:
            assert answer.code == 400
            assert answer.headers["x-amzn-ErrorType"].startswith("SerializationException")
