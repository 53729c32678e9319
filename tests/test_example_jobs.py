"""The ready jobs in examples/ stay valid, and the small ones run green against the emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_there_are_examples_for_each_workload() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {
        "fleet-onboarding",
        "package-rollout",
        "fuota-tasks",
        "ota-tasks",
        "proton-template-versions",
    } <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_dry_run_is_clean(example: Path, tmp_path: Path) -> None:
    done = harness("run", str(example), "--dry-run", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing was sent" in done.stdout


@pytest.mark.parametrize(
    "name", ["package-rollout", "fuota-tasks", "ota-tasks", "proton-template-versions"]
)
def test_small_examples_succeed_against_the_embedded_emulator(name: str, tmp_path: Path) -> None:
    example = next(p for p in EXAMPLES if p.stem == name)
    summary = tmp_path / "summary.json"
    done = harness("run", str(example), "--no-progress", "--summary", str(summary), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = orjson.loads(summary.read_bytes())
    assert data["exit_code"] == 0
    assert all(step["failed"] == 0 and step["ok"] > 0 for step in data["steps"].values())
