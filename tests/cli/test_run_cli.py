"""``harness run`` and ``harness list`` as subprocesses: exit codes, summaries, SIGKILL + resume."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config

from harness.emulator import EmulatorThread
from harness.engine import read_journal

EMULATOR_ACCOUNT = "123456789012"


def harness(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m harness ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def requests_seen(emulator: EmulatorThread) -> int:
    stats: dict[str, Any] = emulator.call(emulator.core.stats)
    return int(stats["requests"])


GOOD_JOB = """\
name: small-fleet
steps:
  - name: groups
    service: iot
    operation: CreateThingGroup
    items: {count: 2}
    params: {thingGroupName: "g-{{ index }}"}
  - name: things
    service: iot
    operation: CreateThing
    items: {count: 10}
    params: {thingName: "t-{{ index }}"}
  - name: membership
    service: iot
    operation: AddThingToThingGroup
    items: {from: things}
    after: [groups]
    params: {thingName: "{{ item.thingName }}", thingGroupName: "g-{{ item.index % 2 }}"}
"""


class TestExitCodes:
    def test_exit_0_with_a_summary_and_a_journal(
        self, tmp_path: Path, harness_emulator: EmulatorThread
    ) -> None:
        job = write(tmp_path / "job.yaml", GOOD_JOB)
        summary_path = tmp_path / "out" / "summary.json"
        result = harness(
            "run",
            str(job),
            "--endpoint",
            harness_emulator.url,
            "--no-progress",
            "--summary",
            str(summary_path),
            "--journal",
            str(tmp_path / "j.jsonl"),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "preflight: 12 items rendered and validated" in result.stdout
        assert "every item succeeded (exit 0)" in result.stdout
        assert f"summary written to {summary_path}" in result.stdout

        summary = orjson.loads(summary_path.read_bytes())
        assert summary["job"] == "small-fleet"
        assert summary["endpoint"] == harness_emulator.url
        assert summary["exit_code"] == 0
        assert summary["steps"] == {
            "groups": {"ok": 2, "failed": 0, "skipped": 0},
            "things": {"ok": 10, "failed": 0, "skipped": 0},
            "membership": {"ok": 10, "failed": 0, "skipped": 0},
        }
        assert summary["failures"] == []
        assert summary["failures_total"] == 0
        operations = {o["operation"]: o for o in summary["operations"]}
        assert set(operations) == {
            "iot.CreateThingGroup",
            "iot.CreateThing",
            "iot.AddThingToThingGroup",
        }
        assert operations["iot.CreateThing"]["calls"] == 10
        # The default rate: 97% of the 100 TPS quota (harness.throttle.DEFAULT_HEADROOM).
        assert summary["rates"]["iot.CreateThing"]["ceiling"] == pytest.approx(97.0)

        state = read_journal(tmp_path / "j.jsonl")
        assert state.job == "small-fleet"
        assert state.total_done == 22
        assert (
            harness_emulator.call(
                lambda: len(
                    harness_emulator.core.state(EMULATOR_ACCOUNT, "us-east-1", "iot").things
                )
            )
            == 10
        )

    def test_the_default_journal_goes_under_dot_harness(
        self, tmp_path: Path, harness_emulator: EmulatorThread
    ) -> None:
        job = write(tmp_path / "job.yaml", GOOD_JOB)
        result = harness(
            "run", str(job), "--endpoint", harness_emulator.url, "--no-progress", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        (journal,) = (tmp_path / ".harness" / "runs").glob("small-fleet-*.jsonl")
        assert read_journal(journal).total_done == 22

    def test_exit_1_when_items_fail(self, tmp_path: Path, harness_emulator: EmulatorThread) -> None:
        job = write(
            tmp_path / "job.yaml",
            """\
name: orphans
steps:
  - name: children
    service: iot
    operation: CreateThingGroup
    items: {count: 3}
    params: {thingGroupName: "child-{{ index }}", parentGroupName: "{{ 'missing' if index else 'root' }}"}
  - name: root
    service: iot
    operation: CreateThingGroup
    params: {thingGroupName: root}
""",
        )
        # child-0's parent "root" may or may not exist by then; child-1 and child-2's never does
        summary_path = tmp_path / "summary.json"
        result = harness(
            "run",
            str(job),
            "--endpoint",
            harness_emulator.url,
            "--no-progress",
            "--summary",
            str(summary_path),
            cwd=tmp_path,
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "some items failed (exit 1)" in result.stdout
        assert "InvalidRequestException" in result.stdout
        summary = orjson.loads(summary_path.read_bytes())
        assert summary["exit_code"] == 1
        failed = {f["key"]: f for f in summary["failures"]}
        assert {"1", "2"} <= set(failed)
        assert failed["1"]["error_code"] == "InvalidRequestException"
        assert failed["1"]["attempts"] == 1
        assert "missing" in failed["1"]["error_message"]
        assert summary["steps"]["root"]["ok"] == 1

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("name: bad\nsteps: [\n  - {name: a\n", "invalid YAML"),
            (
                "name: bad\nsteps:\n  - {name: a, service: iot, operation: CreateThng}\n",
                "has no operation 'CreateThng'; did you mean CreateThing",
            ),
            (
                "name: bad\nsteps:\n  - {name: a, service: iot, operation: CreateThing, "
                "items: {count: 3}, params: {thingName: 't-{{ index '}}\n",
                "template errors",
            ),
            (
                "name: bad\nsteps:\n  - {name: a, service: iot, operation: CreateThing, "
                "items: {count: 3}, params: {thingName: \"{{ 'no spaces!' if index == 1 "
                "else 't' ~ index }}\"}}\n",
                "preflight found 1 problem(s); nothing was sent",
            ),
            (
                "name: bad\nsteps:\n  - {name: a, service: iot, operation: CreateThing, "
                "items: {count: 3}, params: {thingName: '{{ item.nope }}'}}\n",
                "item.nope",
            ),
        ],
        ids=["yaml", "operation", "template-syntax", "invalid-item", "undefined"],
    )
    def test_exit_2_and_nothing_is_sent(
        self, tmp_path: Path, harness_emulator: EmulatorThread, text: str, message: str
    ) -> None:
        job = write(tmp_path / "job.yaml", text)
        result = harness(
            "run",
            str(job),
            "--endpoint",
            harness_emulator.url,
            "--no-progress",
            "--journal",
            str(tmp_path / "j.jsonl"),
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.startswith("error: ")
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert requests_seen(harness_emulator) == 0
        assert not (tmp_path / "j.jsonl").exists()

    def test_invalid_items_are_listed_with_step_and_key(
        self, tmp_path: Path, harness_emulator: EmulatorThread
    ) -> None:
        job = write(
            tmp_path / "job.yaml",
            "name: bad\nsteps:\n  - {name: things, service: iot, operation: CreateThing, "
            "items: {count: 30}, params: {thingName: \"{{ 'x y' if index % 10 == 3 else "
            "'t' ~ index }}\"}}\n",
        )
        result = harness("run", str(job), "--endpoint", harness_emulator.url, cwd=tmp_path)
        assert result.returncode == 2
        for key in ("3", "13", "23"):
            assert f"step 'things' item '{key}': " in result.stderr
        assert requests_seen(harness_emulator) == 0

    def test_dry_run_sends_nothing(self, tmp_path: Path, harness_emulator: EmulatorThread) -> None:
        job = write(tmp_path / "job.yaml", GOOD_JOB)
        result = harness(
            "run", str(job), "--dry-run", "--endpoint", harness_emulator.url, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert "preflight: 12 items rendered and validated" in result.stdout
        assert "dry run: small-fleet is valid; nothing was sent" in result.stdout
        assert requests_seen(harness_emulator) == 0
        assert not (tmp_path / ".harness").exists()

    def test_dry_run_of_invalid_items(self, tmp_path: Path) -> None:
        job = write(
            tmp_path / "job.yaml",
            "name: bad\nsteps:\n  - {name: a, service: iot, operation: CreateThing, "
            "params: {thingName: 'a b'}}\n",
        )
        result = harness("run", str(job), "--dry-run", cwd=tmp_path)
        assert result.returncode == 2
        assert "step 'a' item '0': " in result.stderr

    def test_rate_overrides(self, tmp_path: Path, harness_emulator: EmulatorThread) -> None:
        job = write(tmp_path / "job.yaml", GOOD_JOB)
        summary_path = tmp_path / "summary.json"
        result = harness(
            "run",
            str(job),
            "--endpoint",
            harness_emulator.url,
            "--no-progress",
            "--rate",
            "CreateThing=50",
            "--rate",
            "iot.AddThingToThingGroup=25.5",
            "--summary",
            str(summary_path),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        rates = orjson.loads(summary_path.read_bytes())["rates"]
        assert rates["iot.CreateThing"]["ceiling"] == 50.0
        assert rates["iot.AddThingToThingGroup"]["ceiling"] == 25.5

    @pytest.mark.parametrize(
        ("rate", "message"),
        [
            ("Nope=1", "service 'iot' has no operation 'Nope'"),
            ("greengrassv2.CreateThing=1", "service 'greengrassv2' is not one of iot"),
            ("ListThings=1", "no step of this job calls iot:ListThings"),
            ("CreateThing=fast", "not a number of calls per second"),
            ("CreateThing=0", "the rate must be a positive finite number"),
            ("CreateThing", "expected OPERATION=TPS"),
        ],
    )
    def test_bad_rates(
        self, tmp_path: Path, harness_emulator: EmulatorThread, rate: str, message: str
    ) -> None:
        job = write(tmp_path / "job.yaml", GOOD_JOB)
        result = harness(
            "run", str(job), "--endpoint", harness_emulator.url, "--rate", rate, cwd=tmp_path
        )
        assert result.returncode == 2
        assert message in result.stderr
        assert requests_seen(harness_emulator) == 0

    def test_an_existing_journal_needs_resume(
        self, tmp_path: Path, harness_emulator: EmulatorThread
    ) -> None:
        job = write(tmp_path / "job.yaml", GOOD_JOB)
        journal = write(tmp_path / "j.jsonl", '{"journal": 1, "job": "small-fleet"}\n')
        result = harness(
            "run",
            str(job),
            "--endpoint",
            harness_emulator.url,
            "--journal",
            str(journal),
            cwd=tmp_path,
        )
        assert result.returncode == 2
        assert "exists: pass --resume" in result.stderr
        assert requests_seen(harness_emulator) == 0

    def test_a_bad_endpoint(self, tmp_path: Path) -> None:
        job = write(tmp_path / "job.yaml", GOOD_JOB)
        result = harness("run", str(job), "--endpoint", "localhost:4566", cwd=tmp_path)
        assert result.returncode == 2
        assert "expected embedded, aws or an http(s) URL" in result.stderr

    def test_a_missing_job_file(self, tmp_path: Path) -> None:
        result = harness("run", str(tmp_path / "none.yaml"), cwd=tmp_path)
        assert result.returncode == 2
        assert "cannot read job file" in result.stderr


# ------------------------------------------------------------------------- SIGKILL and resume
@contextlib.contextmanager
def emulator_process(tmp_path: Path) -> Iterator[str]:
    """``harness emulator --port 0`` in a child process (its state outlives any engine)."""
    with (
        (tmp_path / "emulator.err").open("w") as err,
        subprocess.Popen(
            [sys.executable, "-m", "harness", "emulator", "--port", "0"],
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


def boto3_client(service: str, url: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x", region_name="us-east-1"
    )
    return session.client(
        service, endpoint_url=url, config=Config(retries={"max_attempts": 0, "mode": "standard"})
    )


THINGS, FUOTA = 3000, 300

KILL_JOB = f"""\
name: kill-and-resume
steps:
  - name: things
    service: iot
    operation: CreateThing
    items: {{count: {THINGS}}}
    params:
      thingName: "device-{{{{ index | pad(5) }}}}"
      attributePayload: {{attributes: {{batch: "b{{{{ index % 7 }}}}"}}}}
  - name: fuota
    service: iotwireless
    operation: CreateFuotaTask        # takes a client token: derived, so never created twice
    items: {{count: {FUOTA}}}
    params:
      Name: "fw-{{{{ index }}}}"
      LoRaWAN: {{RfRegion: EU868}}
      FirmwareUpdateImage: "s3://firmware/fw-3.1.bin"
      FirmwareUpdateRole: "arn:aws:iam::123456789012:role/fuota"
"""


def journal_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_then_resume_creates_everything_exactly_once(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", KILL_JOB)
    journal = tmp_path / "journal.jsonl"
    with emulator_process(tmp_path) as url:
        args = [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(job),
            "--endpoint",
            url,
            "--journal",
            str(journal),
            "--no-progress",
            "--concurrency",
            "32",
            # fast enough for a test, slow enough for the kill to land while both steps run
            "--rate",
            "CreateThing=3000",
            "--rate",
            "CreateFuotaTask=100",
        ]
        with (
            (tmp_path / "first.out").open("w") as out,
            subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path) as first,
        ):
            deadline = time.monotonic() + 60
            while journal_lines(journal) <= 500:
                assert first.poll() is None, (tmp_path / "first.out").read_text()
                assert time.monotonic() < deadline, "the journal did not grow"
                time.sleep(0.005)
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL

        killed = read_journal(journal)
        assert 500 <= killed.total_done < THINGS + FUOTA
        assert len(killed.done.get("fuota", {})) < FUOTA  # killed while FUOTA tasks were going

        resumed = subprocess.run(
            [*args, "--resume"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"resuming: {killed.total_done} items already done are skipped" in resumed.stdout

        final = read_journal(journal)
        assert set(final.done["things"]) == {str(i) for i in range(THINGS)}
        assert set(final.done["fuota"]) == {str(i) for i in range(FUOTA)}
        assert final.job == "kill-and-resume"

        # The emulator: exactly 3,000 distinct things and 300 FUOTA tasks, none twice.
        iot = boto3_client("iot", url)
        wireless = boto3_client("iotwireless", url)
        try:
            names = [
                thing["thingName"]
                for page in iot.get_paginator("list_things").paginate(maxResults=250)
                for thing in page["things"]
            ]
            tasks: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {"MaxResults": 250}
            while True:
                page = wireless.list_fuota_tasks(**kwargs)
                tasks.extend(page["FuotaTaskList"])
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        finally:
            iot.close()
            wireless.close()
        assert len(names) == THINGS
        assert set(names) == {f"device-{i:05d}" for i in range(THINGS)}
        by_name = collections.Counter(task["Name"] for task in tasks)
        assert len(tasks) == FUOTA
        assert set(by_name) == {f"fw-{i}" for i in range(FUOTA)}
        assert max(by_name.values()) == 1

        # harness list streams every thing out
        out = tmp_path / "things.jsonl"
        listed = harness(
            "list",
            "iot",
            "ListThings",
            "--endpoint",
            url,
            "--out",
            str(out),
            "--param",
            "maxResults=100",
            "--rate",
            "1000",
            cwd=tmp_path,
        )
        assert listed.returncode == 0, listed.stderr
        rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert sorted(row["thingName"] for row in rows) == sorted(names)
        assert "30 page calls" in listed.stderr


# ------------------------------------------------------------------------------ harness list
def test_list_streams_every_item(
    tmp_path: Path, harness_emulator: EmulatorThread, aws_client: Any
) -> None:
    iot = aws_client("iot")
    for i in range(45):
        iot.create_thing(thingName=f"l-{i:02d}", attributePayload={"attributes": {"n": str(i)}})
    out = tmp_path / "out.jsonl"
    result = harness(
        "list",
        "iot",
        "ListThings",
        "--endpoint",
        harness_emulator.url,
        "--param",
        "maxResults=10",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(r["thingName"] for r in rows) == [f"l-{i:02d}" for i in range(45)]
    assert rows[0]["attributes"] == {"n": "0"}
    stats = harness_emulator.call(harness_emulator.core.stats)
    assert stats["operations"]["iot.ListThings"]["requests"] == 5


def test_list_to_stdout(tmp_path: Path, harness_emulator: EmulatorThread, aws_client: Any) -> None:
    aws_client("iot").create_thing(thingName="only")
    result = harness("list", "iot", "list_things", "--endpoint", harness_emulator.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["thingName"] for line in result.stdout.splitlines()] == ["only"]


def test_list_fans_out_over_a_params_file(
    tmp_path: Path, harness_emulator: EmulatorThread, aws_client: Any
) -> None:
    iot, greengrass = aws_client("iot"), aws_client("greengrassv2")
    targets = []
    for i in range(3):
        arn = iot.create_thing_group(thingGroupName=f"fleet-{i}")["thingGroupArn"]
        targets.append(arn)
        for revision in range(2):
            greengrass.create_deployment(
                targetArn=arn,
                deploymentName=f"d-{i}-{revision}",
                components={"aws.greengrass.Nucleus": {"componentVersion": "2.12.0"}},
            )
    params = tmp_path / "targets.jsonl"
    params.write_bytes(
        b"".join(
            orjson.dumps({"targetArn": arn, "historyFilter": "ALL"}) + b"\n" for arn in targets
        )
    )
    out = tmp_path / "deployments.jsonl"
    result = harness(
        "list",
        "greengrassv2",
        "ListDeployments",
        "--params-file",
        str(params),
        "--endpoint",
        harness_emulator.url,
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert collections.Counter(r["targetArn"] for r in rows) == dict.fromkeys(targets, 2)
    assert sorted(r["deploymentName"] for r in rows) == sorted(
        f"d-{i}-{r}" for i in range(3) for r in range(2)
    )
    stats = harness_emulator.call(harness_emulator.core.stats)
    assert stats["operations"]["greengrassv2.ListDeployments"]["requests"] == 3


def test_list_of_an_operation_without_a_paginator(tmp_path: Path) -> None:
    result = harness("list", "iot", "CreateThing", "--endpoint", "http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 2
    assert "has no paginator" in result.stderr


def test_list_with_a_bad_params_file(tmp_path: Path) -> None:
    params = write(tmp_path / "p.jsonl", '{"targetArn": "x"}\n[1]\n')
    result = harness(
        "list",
        "greengrassv2",
        "ListDeployments",
        "--params-file",
        str(params),
        "--endpoint",
        "http://127.0.0.1:9",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "p.jsonl:2: each line must be a JSON object" in result.stderr
