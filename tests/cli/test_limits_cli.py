"""Hostile job files through the real CLI: each is refused with exit 2 and a message naming the
limit, quickly and in bounded memory.

Every case runs ``python -m harness run JOB --dry-run`` in a subprocess capped at 1 GiB of
address space (RLIMIT_AS), with a timeout. Before the limits these files hung, grew past 500 MB
or printed a traceback. Speed is asserted as the child's CPU time (user + sys, from wait4), which
does not depend on how loaded the machine is, and memory as its peak RSS.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ADDRESS_SPACE = 2**30
#: CPU seconds: importing harness takes about one; a refusal adds a fraction of a second.
CPU_BUDGET = 6.0
RSS_BUDGET_KB = 300 * 1024


def rss_budget_kb() -> int:
    """The child's peak RSS budget, on top of what it inherits: ru_maxrss of a child forked from
    this process starts from the pages it shares with it at fork (a pytest-xdist worker holds
    about 300 MB), so the budget is this process's own peak plus RSS_BUDGET_KB."""
    with open("/proc/self/status") as status:
        own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return own + RSS_BUDGET_KB


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    cpu: float
    max_rss_kb: int


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_all(jobs: dict[str, list[str]], cwd: Path, timeout: float = 180) -> dict[str, Outcome]:
    """Start every command at once (``harness`` ARGS), wait for all; their outcomes by name."""
    started: dict[str, tuple[subprocess.Popen[bytes], Path, Path]] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_MAX_")}
    for name, args in jobs.items():
        out, err = cwd / f"{name}.out", cwd / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "harness", *args],
                cwd=cwd,
                stdout=stdout,
                stderr=stderr,
                preexec_fn=_cap_memory,
                env=env,
            )
        started[name] = (process, out, err)
    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(started):
        for name, (process, out, err) in started.items():
            if name in outcomes:
                continue
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == 0:
                if time.monotonic() > deadline:
                    os.kill(process.pid, signal.SIGKILL)
                continue
            process.returncode = os.waitstatus_to_exitcode(status)
            outcomes[name] = Outcome(
                process.returncode,
                out.read_text(),
                err.read_text(),
                usage.ru_utime + usage.ru_stime,
                usage.ru_maxrss,
            )
        time.sleep(0.05)
    return outcomes


STEP = "  - {{name: a, service: iot, operation: CreateThing, {fields}}}\n"


def job_yaml(fields: str = "params: {thingName: t}", top: str = "") -> str:
    return f"name: hostile\n{top}steps:\n" + STEP.format(fields=fields)


def alias_bomb() -> str:
    lines = ["      l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "name: bomb\nsteps:\n  - name: a\n    service: iot\n    operation: CreateThing\n" + (
        "    params:\n      thingName: x\n" + "\n".join(lines) + "\n"
    )


def merge_bomb() -> str:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4}"]
    lines += [
        f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}, *m{i - 1}, *m{i - 1}]}}" for i in range(1, 16)
    ]
    return "\n".join(lines) + "\n" + job_yaml()


#: name -> (file name, text or bytes, what stderr must say)
HOSTILE: dict[str, tuple[str, str | bytes, list[str]]] = {
    "alias-bomb": ("bomb.yaml", alias_bomb(), ["job_nodes limit", "HARNESS_MAX_JOB_NODES"]),
    "merge-bomb": ("merge.yaml", merge_bomb(), ["job_nodes limit"]),
    "recursive-alias": ("rec.yaml", "a: &a [*a]\n" + job_yaml(), ["recursive YAML alias (*a)"]),
    "deep-yaml": (
        "deep.yaml",
        job_yaml("params: {thingName: x, deep: " + "[" * 100_000 + "]" * 100_000 + "}"),
        ["depth limit of 64", "HARNESS_MAX_DEPTH"],
    ),
    "deep-json": (
        "deep.json",
        '{"name": "d", "steps": [{"name": "a", "service": "iot", "operation": "CreateThing", '
        '"params": {"thingName": "x", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}}]}",
        ["depth limit of 64"],
    ),
    "deep-json-within-orjson": (
        "deep2.json",
        '{"name": "d", "steps": [{"name": "a", "service": "iot", "operation": "CreateThing", '
        '"params": {"thingName": "x", "deep": ' + "[" * 500 + "]" * 500 + "}}]}",
        ["depth limit of 64"],
    ),
    "huge-file": ("huge.yaml", job_yaml() + "#" * (9 * 2**20) + "\n", ["job_bytes limit"]),
    "long-integer": ("int.yaml", job_yaml(top=f"x: {'9' * 5000}\n"), ["invalid YAML"]),
    "concurrency": (
        "conc.yaml",
        job_yaml(top="concurrency: 100000000\n"),
        ["concurrency: 100000000 is above the maximum of 4,096"],
    ),
    "retries": (
        "retries.yaml",
        job_yaml(top="retries: {max_attempts: 1000000000}\n"),
        ["retries.max_attempts: 1000000000 is above the maximum of 100"],
    ),
    "rate-nan": (
        "nan.yaml",
        job_yaml("rate: .nan, params: {thingName: t}"),
        ["step 'a': rate: expected a positive number"],
    ),
    "rate-huge": (
        "rate.yaml",
        job_yaml("rate: 1.0e+300, params: {thingName: t}"),
        ["step 'a': rate: 1e+300 is above the maximum of 1,000,000"],
    ),
    "count-huge": (
        "count.yaml",
        job_yaml("items: {count: 1000000000000}, params: {thingName: 't{{ index }}'}"),
        ["step 'a': items.count 1,000,000,000,000 is above the step_items limit"],
    ),
    "range-huge": (
        "range.yaml",
        job_yaml("items: {range: {stop: 100000000000000000000000}}, params: {thingName: t}"),
        ["step 'a': items.range has", "step_items limit"],
    ),
    "dry-run-count": (
        "dry.yaml",
        job_yaml("items: {count: 100000000}, params: {thingName: 't{{ index }}'}"),
        ["a dry run renders every item", "dry_run_items limit", "HARNESS_MAX_DRY_RUN_ITEMS"],
    ),
    "template-multiply": (
        "mul.yaml",
        job_yaml("""params: {thingName: "{{ 'x' * 2**31 }}"}"""),
        ["step 'a' item '0'", "params.thingName", "value_size limit", "HARNESS_MAX_VALUE_SIZE"],
    ),
    "template-list": (
        "list.yaml",
        job_yaml('params: {thingName: t, attributePayload: "{{ [0] * 10**9 }}"}'),
        ["step 'a' item '0'", "params.attributePayload", "value_size limit"],
    ),
    "template-range": (
        "range-t.yaml",
        job_yaml('params: {thingName: "{{ range(10**10) | join }}"}'),
        ["step 'a' item '0'", "template_steps limit", "HARNESS_MAX_TEMPLATE_STEPS"],
    ),
    "template-loop": (
        "loop.yaml",
        job_yaml(
            'params: {thingName: "{% for i in range(9999) %}{% for j in range(9999) %}'
            '{% endfor %}{% endfor %}"}'
        ),
        ["step 'a' item '0'", "template_steps limit"],
    ),
    "csv-line": (
        "csv.yaml",
        job_yaml("items: {csv: long.csv}, params: {thingName: t}"),
        ["step 'a': cannot read items", "long.csv:2: the line is longer than", "line_bytes"],
    ),
    "jsonl-line": (
        "jsonl.yaml",
        job_yaml("items: {jsonl: long.jsonl}, params: {thingName: t}"),
        ["long.jsonl:1: the line is longer than the line_bytes limit", "HARNESS_MAX_LINE_BYTES"],
    ),
    "jsonl-deep": (
        "deepl.yaml",
        job_yaml("items: {jsonl: deep.jsonl}, params: {thingName: t}"),
        ["deep.jsonl:1: nests deeper than the depth limit of 64"],
    ),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    cwd = tmp_path_factory.mktemp("hostile")
    (cwd / "long.csv").write_bytes(b"thingName\n" + b"x" * (3 * 2**20))
    (cwd / "long.jsonl").write_bytes(b'{"a": "' + b"x" * (3 * 2**20) + b'"}\n')
    (cwd / "deep.jsonl").write_bytes(b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}\n")
    jobs: dict[str, list[str]] = {}
    for name, (file, text, _) in HOSTILE.items():
        path = cwd / file
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        jobs[name] = ["run", str(path), "--dry-run", "--no-progress"]
    return run_all(jobs, cwd)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_job_file_is_refused_quickly_in_bounded_memory(
    name: str, outcomes: dict[str, Outcome]
) -> None:
    outcome = outcomes[name]
    expected = HOSTILE[name][2]
    assert outcome.returncode == 2, (outcome.returncode, outcome.stderr[-2000:])
    assert "Traceback" not in outcome.stderr + outcome.stdout
    assert outcome.stderr.startswith("error: "), outcome.stderr[:2000]
    for text in expected:
        assert text in outcome.stderr, (text, outcome.stderr[:2000])
    assert len(outcome.stderr) < 4000  # one message, not a dump of the input
    assert outcome.cpu < CPU_BUDGET, f"{outcome.cpu:.2f} s of CPU"
    assert outcome.max_rss_kb < rss_budget_kb(), f"{outcome.max_rss_kb / 1024:.0f} MB peak RSS"


def test_limits_can_be_raised_and_lowered_from_the_environment(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("items: {count: 50}, params: {thingName: 't{{ index }}'}"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_MAX_")}

    def dry_run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness", "run", str(job), "--dry-run", "--no-progress"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**base, **env},
            timeout=120,
            check=False,
        )

    lowered = dry_run(HARNESS_MAX_DRY_RUN_ITEMS="10")
    assert lowered.returncode == 2
    assert "the job has 50 items (step 'a': 50), above the dry_run_items limit of 10" in (
        lowered.stderr
    )
    assert dry_run(HARNESS_MAX_DRY_RUN_ITEMS="50").returncode == 0
    bad = dry_run(HARNESS_MAX_DEPTH="deep")
    assert bad.returncode == 2
    assert "HARNESS_MAX_DEPTH='deep': expected a positive integer" in bad.stderr
    assert "Traceback" not in bad.stderr
