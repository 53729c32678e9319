"""Targets as a user meets them, through real ``harness`` processes with an isolated AWS
environment: fail fast (dead endpoints, unknown profiles, missing credentials) and the AWS
conventions (``AWS_ENDPOINT_URL[_<SERVICE>]``, ``AWS_REGION``), checked against emulator children.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest
from botocore.configprovider import ConfiguredEndpointProvider

from harness.cli._target import configured_endpoints
from harness.model import SEED_SERVICES

if TYPE_CHECKING:
    from collections.abc import Iterator

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: A loose bound for "within seconds" on a loaded 2-core machine: a bound, not a target.
SECONDS = 20.0

#: A job that calls two services: the first step's operation names its service by prefix.
TWO_SERVICES_JOB = """\
name: two-services
steps:
  - name: things
    operation: iot:CreateThing
    items: {count: 3}
    params: {thingName: "t-{{ index }}"}
  - name: deployments
    kind: list
    service: greengrassv2
    operation: list_deployments
"""

_PROXIES = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any AWS_* or proxy variable, with HOME and the AWS
    config files pointing into ``home`` (empty unless a test writes them), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in _PROXIES}
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        # No instance metadata service here: the credential chain must not wait for one.
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Finished:
    """A finished ``harness`` process."""

    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def error_lines(self) -> list[str]:
        """The non-empty lines of stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def harness(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> Finished:
    """Run ``python -m harness ARGS`` to completion and time it."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@contextlib.contextmanager
def emulator_child() -> Iterator[str]:
    """``harness emulator`` in a child process on a free loopback port; its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on ")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def operations_seen(url: str) -> dict[str, int]:
    """Requests per ``service.Operation`` an emulator has answered (its admin API)."""
    with urllib.request.urlopen(f"{url}/_harness/stats", timeout=10) as response:
        stats: dict[str, Any] = orjson.loads(response.read())
    return {name: int(s["requests"]) for name, s in stats["operations"].items()}


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The operations whose request count grew, and by how much."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}


@contextlib.contextmanager
def dead_port() -> Iterator[str]:
    """A loopback URL nothing listens on: the port is bound (so nobody else takes it) but not
    listening, so a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def assert_one_error_line(done: Finished, *fragments: str) -> str:
    """Exit 2, no traceback, one ``error:`` line on stderr holding every fragment."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.error_lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(TWO_SERVICES_JOB)
    return path


@pytest.fixture(scope="module")
def emulators() -> Iterator[tuple[str, str]]:
    """Two emulator children, A and B."""
    with emulator_child() as a, emulator_child() as b:
        yield a, b


class TestFailFast:
    def test_a_dead_endpoint_is_exit_2_in_seconds_and_no_journal(
        self, tmp_path: Path, job: Path
    ) -> None:
        journal = tmp_path / "journal.jsonl"
        with dead_port() as url:
            done = harness(
                "run",
                str(job),
                "--endpoint",
                url,
                "--no-progress",
                "--journal",
                str(journal),
                env=isolated_env(tmp_path),
                cwd=tmp_path,
            )
        line = assert_one_error_line(done, f"cannot reach {url} (connection refused)")
        assert line.endswith("is the endpoint running? check --endpoint")
        assert done.elapsed < SECONDS
        assert not journal.exists()

    def test_the_fleet_example_against_a_dead_endpoint(self, tmp_path: Path) -> None:
        # The before-stop check: 30,000 items would each be retried 8 times without it.
        with dead_port() as url:
            done = harness(
                "run",
                str(ROOT / "examples/fleet-onboarding.yaml"),
                "--endpoint",
                url,
                "--no-progress",
                "--journal",
                str(tmp_path / "j.jsonl"),
                env=isolated_env(tmp_path),
                cwd=tmp_path,
            )
        assert_one_error_line(done, f"cannot reach {url}")
        assert done.elapsed < SECONDS + 10  # the preflight renders every item first

    def test_a_dead_endpoint_from_the_environment_names_its_variable(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        a, _ = emulators
        with dead_port() as url:
            env = isolated_env(tmp_path, AWS_ENDPOINT_URL_IOT=url, AWS_ENDPOINT_URL=a)
            done = harness("run", str(job), "--no-progress", env=env, cwd=tmp_path)
        assert_one_error_line(
            done, f"cannot reach {url} (connection refused)", "check AWS_ENDPOINT_URL_IOT"
        )

    @pytest.mark.parametrize(
        "command",
        [
            ["list", "iot", "ListThings"],
            ["list", "iot", "ListThings", "--transport", "aiobotocore"],
            [
                "load",
                "-o",
                "iot:create_thing",
                "thingName=t-{n}",
                "--rate",
                "5",
                "--duration",
                "1s",
            ],
            ["fuzz", "--operation", "iot:ListThings", "--examples", "1"],
        ],
        ids=["list", "list-aiobotocore", "load", "fuzz"],
    )
    def test_every_command_checks_its_target(self, tmp_path: Path, command: list[str]) -> None:
        with dead_port() as url:
            done = harness(*command, "--endpoint", url, env=isolated_env(tmp_path), cwd=tmp_path)
        assert_one_error_line(done, f"cannot reach {url} (connection refused)")
        assert done.elapsed < SECONDS

    def test_a_bad_aws_profile_does_not_touch_the_embedded_emulator(self, tmp_path: Path) -> None:
        # The before-stop check, as it runs it.
        env = isolated_env(tmp_path, AWS_PROFILE="no-such-profile")
        done = harness(
            "run",
            str(ROOT / "examples/ota-tasks.yaml"),
            "--no-progress",
            "--journal",
            str(tmp_path / "j.jsonl"),
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert "against embedded emulator http://127.0.0.1:" in done.stdout

    def test_a_bad_aws_profile_stops_a_run_against_an_endpoint(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        env = isolated_env(tmp_path, AWS_PROFILE="nosuch")
        before = operations_seen(emulators[0])
        done = harness("run", str(job), "--endpoint", emulators[0], env=env, cwd=tmp_path)
        assert_one_error_line(
            done,
            f"the profile 'nosuch' (from AWS_PROFILE) is not in {tmp_path / 'aws-config'} "
            f"or {tmp_path / 'aws-credentials'}",
        )
        assert done.elapsed < SECONDS
        assert grown(before, operations_seen(emulators[0])) == {}

    @pytest.mark.parametrize("command", ["run", "load", "list", "fuzz"])
    def test_an_unknown_profile_flag(self, tmp_path: Path, job: Path, command: str) -> None:
        args = {
            "run": ["run", str(job)],
            "load": [
                "load",
                "-o",
                "iot:CreateThing",
                "thingName=t",
                "--rate",
                "1",
                "--duration",
                "1s",
            ],
            "list": ["list", "iot", "ListThings"],
            "fuzz": ["fuzz", "--operation", "iot:ListThings", "--examples", "1"],
        }[command]
        env = isolated_env(tmp_path)
        done = harness(*args, "--endpoint", "aws", "--profile", "nosuch", env=env, cwd=tmp_path)
        assert_one_error_line(done, "the profile 'nosuch' (from --profile) is not in")

    def test_a_profile_with_the_embedded_emulator_is_a_usage_error(
        self, tmp_path: Path, job: Path
    ) -> None:
        done = harness(
            "run", str(job), "--profile", "prod", env=isolated_env(tmp_path), cwd=tmp_path
        )
        assert_one_error_line(done, "--profile 'prod': the embedded emulator needs no credentials")

    def test_no_credentials_against_aws(self, tmp_path: Path, job: Path) -> None:
        done = harness(
            "run", str(job), "--endpoint", "aws", env=isolated_env(tmp_path), cwd=tmp_path
        )
        line = assert_one_error_line(done)
        assert line == (
            "error: no AWS credentials found: set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run aws configure"
        )
        assert done.elapsed < SECONDS

    def test_an_unreadable_config_file(self, tmp_path: Path, job: Path) -> None:
        (tmp_path / "aws-config").write_text("[default\nregion = eu-west-1\n")
        done = harness(
            "run", str(job), "--endpoint", "aws", env=isolated_env(tmp_path), cwd=tmp_path
        )
        assert_one_error_line(done, "the AWS configuration cannot be used", "aws-config")

    def test_partial_credentials(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        env = isolated_env(tmp_path, AWS_ACCESS_KEY_ID="AKIDEXAMPLE")
        done = harness("run", str(job), "--endpoint", emulators[0], env=env, cwd=tmp_path)
        assert_one_error_line(done, "incomplete AWS credentials", "AWS_SECRET_ACCESS_KEY")

    def test_a_profile_from_the_credentials_file_is_used(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        (tmp_path / "aws-credentials").write_text(
            "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = secret\n"
        )
        (tmp_path / "aws-config").write_text("[profile dev]\nregion = eu-north-1\n")
        env = isolated_env(tmp_path)
        done = harness(
            "run",
            str(job),
            "--endpoint",
            emulators[0],
            "--profile",
            "dev",
            "--no-progress",
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        # The profile's region, as the SDK would use it.
        iot = boto3.client(
            "iot",
            endpoint_url=emulators[0],
            region_name="eu-north-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        assert {"t-0", "t-1", "t-2"} <= {t["thingName"] for t in iot.list_things()["things"]}


class TestEnvironment:
    def test_the_variable_names_are_botocores(self, monkeypatch: pytest.MonkeyPatch) -> None:
        expected = {
            "iot": "AWS_ENDPOINT_URL_IOT",
            "greengrassv2": "AWS_ENDPOINT_URL_GREENGRASSV2",
            "iotwireless": "AWS_ENDPOINT_URL_IOT_WIRELESS",
            "proton": "AWS_ENDPOINT_URL_PROTON",
            "iot-managed-integrations": "AWS_ENDPOINT_URL_IOT_MANAGED_INTEGRATIONS",
        }
        for service in SEED_SERVICES:
            provider = ConfiguredEndpointProvider({}, {}, service)
            assert provider._get_service_env_var_name() == expected[service]
        for name in [*expected.values(), "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]:
            monkeypatch.delenv(name, raising=False)
        for service, variable in expected.items():
            monkeypatch.setenv(variable, f"http://{service}.test")
        found = configured_endpoints(SEED_SERVICES)
        assert found == {s: (f"http://{s}.test", v) for s, v in expected.items()}
        monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
        assert configured_endpoints(SEED_SERVICES) == {}

    def test_per_service_and_global_endpoints_are_honoured(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        a, b = emulators
        before_a, before_b = operations_seen(a), operations_seen(b)
        env = isolated_env(tmp_path, AWS_ENDPOINT_URL_IOT=a, AWS_ENDPOINT_URL=b)
        done = harness("run", str(job), "--no-progress", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"against iot {a}, greengrassv2 {b}" in done.stdout
        assert grown(before_a, operations_seen(a)) == {"iot.CreateThing": 3}
        assert grown(before_b, operations_seen(b)) == {"greengrassv2.ListDeployments": 1}

    def test_ignore_configured_endpoint_urls_keeps_the_embedded_default(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        a, _ = emulators
        before = operations_seen(a)
        env = isolated_env(tmp_path, AWS_ENDPOINT_URL=a, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true")
        done = harness("run", str(job), "--no-progress", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "against embedded emulator http://127.0.0.1:" in done.stdout
        assert grown(before, operations_seen(a)) == {}

    def test_the_endpoint_flag_wins_over_the_environment(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        a, b = emulators
        before_a, before_b = operations_seen(a), operations_seen(b)
        env = isolated_env(tmp_path, AWS_ENDPOINT_URL=a)
        done = harness("run", str(job), "--endpoint", b, "--no-progress", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"against {b}" in done.stdout
        assert grown(before_a, operations_seen(a)) == {}
        assert sum(grown(before_b, operations_seen(b)).values()) == 4

    def test_aws_region_wins_over_aws_default_region(
        self, tmp_path: Path, job: Path, emulators: tuple[str, str]
    ) -> None:
        a, _ = emulators
        (tmp_path / "j.yaml").write_text(job.read_text().replace("t-{{", "region-{{"))
        env = isolated_env(
            tmp_path, AWS_ENDPOINT_URL=a, AWS_REGION="eu-west-3", AWS_DEFAULT_REGION="ap-south-1"
        )
        done = harness("run", str(tmp_path / "j.yaml"), "--no-progress", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr

        def things(region: str) -> set[str]:
            iot = boto3.client(
                "iot",
                endpoint_url=a,
                region_name=region,
                aws_access_key_id="x",
                aws_secret_access_key="y",
            )
            return {t["thingName"] for t in iot.list_things()["things"]}

        assert {"region-0", "region-1", "region-2"} <= things("eu-west-3")
        assert not {"region-0"} & things("ap-south-1")

    @pytest.mark.parametrize(
        ("command", "operation"),
        [
            (["list", "iot", "ListThings"], "iot.ListThings"),
            (
                [
                    "load",
                    "-o",
                    "create_thing",
                    "thingName=load-{n}",
                    "--rate",
                    "4",
                    "--duration",
                    "1s",
                ],
                "iot.CreateThing",
            ),
            (
                ["fuzz", "--operation", "iot:list_things", "--examples", "2", "--no-negative"],
                "iot.ListThings",
            ),
            (["sweep", "--run-id", "abcd1234"], "iot.ListThings"),
        ],
        ids=["list", "load", "fuzz", "sweep"],
    )
    def test_list_load_fuzz_and_sweep_follow_the_environment(
        self, tmp_path: Path, emulators: tuple[str, str], command: list[str], operation: str
    ) -> None:
        a, _ = emulators
        before = operations_seen(a)
        # Every service sweep lists goes to A; the others name only iot.
        env = isolated_env(tmp_path, AWS_ENDPOINT_URL_IOT=a, AWS_ENDPOINT_URL=a)
        done = harness(*command, env=env, cwd=tmp_path)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert operation in grown(before, operations_seen(a))
