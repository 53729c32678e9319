"""``--rate`` of ``run``, ``list`` and ``load``, and operation names in ``--rate``, through real
``harness`` processes: bad rates are usage errors naming the flag, before anything else."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

JOB = """\
name: rates
steps:
  - name: things
    service: iot
    operation: CreateThing
    items: {count: 2}
    params: {thingName: "t-{{ index }}"}
  - name: gg
    kind: list
    operation: greengrassv2:ListDeployments
  - name: proton
    kind: list
    operation: proton:list_deployments
"""


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m harness ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB)
    return path


class TestRunRate:
    @pytest.mark.parametrize("tps", ["nan", "NaN", "inf", "-inf", "0", "0.0", "-1", "abc", ""])
    def test_bad_rates_are_usage_errors_even_with_dry_run(
        self, tmp_path: Path, job: Path, tps: str
    ) -> None:
        done = harness("run", str(job), "--dry-run", "--rate", f"CreateThing={tps}", cwd=tmp_path)
        line = one_error(done)
        assert line.startswith(f"error: --rate 'CreateThing={tps}': ")
        assert "calls per second" in line
        assert "dry run" not in done.stdout

    @pytest.mark.parametrize(
        "spec",
        [
            "CreateThing=0.01",
            "create_thing=0.2",
            "iot:CreateThing=0.49",
            "iot.create_thing=1e-3",
            "greengrassv2:ListDeployments=5",
            "proton.ListDeployments=2.5",
        ],
    )
    def test_every_operation_spelling_and_rates_below_one(
        self, tmp_path: Path, job: Path, spec: str
    ) -> None:
        done = harness("run", str(job), "--dry-run", "--rate", spec, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "dry run: rates is valid" in done.stdout

    def test_a_name_two_services_of_the_job_define_needs_the_prefix(
        self, tmp_path: Path, job: Path
    ) -> None:
        line = one_error(
            harness("run", str(job), "--dry-run", "--rate", "ListDeployments=5", cwd=tmp_path)
        )
        assert "ambiguous" in line
        assert "greengrassv2:ListDeployments or proton:ListDeployments" in line

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("ListThings=5", "no step of this job calls iot:ListThings"),
            ("iotwireless:ListFuotaTasks=5", "'iotwireless' is not one of"),
            ("CreateThingz=5", "did you mean CreateThing"),
            ("CreateThing", "expected OPERATION=TPS"),
        ],
    )
    def test_operations_the_job_does_not_call(
        self, tmp_path: Path, job: Path, spec: str, message: str
    ) -> None:
        line = one_error(harness("run", str(job), "--dry-run", "--rate", spec, cwd=tmp_path))
        assert line.startswith(f"error: --rate {spec!r}: ")
        assert message in line


class TestPlainRate:
    @pytest.mark.parametrize("tps", ["nan", "inf", "0", "-2"])
    def test_list_rate(self, tmp_path: Path, tps: str) -> None:
        # Refused while the arguments are read: no emulator is started.
        line = one_error(harness("list", "iot", "ListThings", "--rate", tps, cwd=tmp_path))
        assert line == (
            f"error: --rate {tps!r}: the rate must be a positive finite number of calls per second"
        )

    @pytest.mark.parametrize("tps", ["nan", "inf", "0", "-2", "fast"])
    def test_load_rate(self, tmp_path: Path, tps: str) -> None:
        done = harness(
            "load", "-o", "iot:CreateThing", "thingName=t-{n}", "--duration", "1s",
            "--rate", tps, cwd=tmp_path,
        )  # fmt: skip
        assert one_error(done).startswith(f"error: --rate {tps!r}: ")
