"""A throttle storm: ``harness run`` started far above the quota of ``harness emulator --throttle aws``.

Runs two scenarios against one real emulator process that enforces the published quotas (reset
between them), each a one-step job of CreateThing items (quota 100 TPS) through ``harness run``
in a child process, and prints per scenario: items done and failed, attempts, the share of
attempts throttled (over the whole run and in its first 10 s, from the emulator's count per
second), the achieved rate (the operation's calls/s from its first to its last call) as a share
of the quota, and the elapsed time.

* ``10x``: ``--rate CreateThing=1000``, ten times the quota (the issue's throttle storm);
* ``default``: no ``--rate``: the engine's default rate for the operation.

Targets (issue 9, point 7): every item completes in both; at 10x fewer than 10% of all attempts
throttled; at the default rate at least 95% of the quota with under 1% throttled. The script
prints PASS/MISS per target; the exit status is 1 when an item failed or a run broke, never for
a missed figure (performance targets are not unit-tested).

    .venv/bin/python perf/throttle_storm.py                 # 3,000 items per scenario, ~1 min
    .venv/bin/python perf/throttle_storm.py --items 500     # quicker
    .venv/bin/python perf/throttle_storm.py --json out.json # also write every number
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

QUOTA = 100.0  # iot CreateThing in specs/quotas.yaml, which the emulator enforces

JOB = """\
name: storm-{label}
concurrency: {concurrency}
steps:
  - name: things
    service: iot
    operation: CreateThing
    items: {{count: {items}}}
    params: {{thingName: "storm-{label}-{{{{ index | pad(6) }}}}"}}
"""


class Emulator:
    """``harness emulator --throttle aws`` in a child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "emulator", "--port", "0", "--throttle", "aws"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on http://"):
            self.stop()
            raise SystemExit(f"the emulator did not start: {line!r}")
        self.url = line.removeprefix("listening on ")

    def admin(self, method: str, action: str) -> Any:
        request = urllib.request.Request(f"{self.url}/_harness/{action}", method=method, data=b"")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def counts(self) -> tuple[int, int]:
        """(requests, throttles) of iot.CreateThing so far."""
        op = self.admin("GET", "stats")["operations"].get("iot.CreateThing", {})
        return int(op.get("requests", 0)), int(op.get("throttles", 0))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def scenario(
    emulator: Emulator, label: str, rate: float | None, args: argparse.Namespace
) -> dict[str, Any]:
    emulator.admin("POST", "reset")
    with tempfile.TemporaryDirectory(prefix="storm-") as tmp:
        job = Path(tmp) / "job.yaml"
        job.write_text(JOB.format(label=label, items=args.items, concurrency=args.concurrency))
        summary = Path(tmp) / "summary.json"
        command = [
            sys.executable, "-m", "harness", "run", str(job), "--endpoint", emulator.url,
            "--journal", str(Path(tmp) / "journal.jsonl"), "--summary", str(summary),
            "--no-progress",
        ]  # fmt: skip
        if rate is not None:
            command += ["--rate", f"CreateThing={rate:g}"]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}
        # The emulator's counters, sampled every second: the throttled share in the first 10 s.
        samples: list[tuple[float, int, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                samples.append((time.monotonic(), *emulator.counts()))

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        samples.append((started, *emulator.counts()))
        sampler.start()
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=args.limit_s, check=False
            )
        finally:
            done.set()
            sampler.join()
        elapsed = time.monotonic() - started
        if not summary.exists():
            raise SystemExit(
                f"{label}: harness run wrote no summary (exit {result.returncode}):\n"
                f"{result.stderr[-2000:]}"
            )
        data = json.loads(summary.read_text())
    requests, throttles = emulator.counts()
    first = [s for s in samples if s[0] - started <= 10.0]
    f_requests, f_throttles = first[-1][1], first[-1][2]
    op = next(iter(data["operations"]), {})
    steps = data["steps"]["things"]
    # The operation's own rate, first to last call: start-up and preflight are not its pace.
    achieved = float(op.get("calls_per_s", 0.0))
    return {
        "scenario": label,
        "rate": rate,
        "items": args.items,
        "ok": steps["ok"],
        "failed": steps["failed"],
        "exit_code": result.returncode,
        "attempts": requests,
        "throttled": throttles,
        "throttled_share": throttles / requests if requests else 0.0,
        "first_10s_attempts": f_requests,
        "first_10s_throttled": f_throttles,
        "first_10s_share": f_throttles / f_requests if f_requests else 0.0,
        "elapsed_s": round(elapsed, 2),
        "run_elapsed_s": data["elapsed_s"],
        "achieved_tps": achieved,
        "quota_share": achieved / QUOTA,
        "items_per_run_s": steps["ok"] / data["elapsed_s"] if data["elapsed_s"] else 0.0,
        "engine": op,
        "final_rate": data.get("rates", {}).get("iot.CreateThing", {}).get("rate"),
    }


def report(row: dict[str, Any]) -> list[str]:
    lines = [
        f"{row['scenario']:>7}: {row['ok']:,}/{row['items']:,} done, {row['failed']} failed,"
        f" {row['attempts']:,} attempts, {row['throttled']:,} throttled"
        f" ({row['throttled_share']:.1%}; first 10 s: {row['first_10s_share']:.1%} of"
        f" {row['first_10s_attempts']:,}), {row['achieved_tps']:.1f} calls/s ="
        f" {row['quota_share']:.1%} of the quota ({row['items_per_run_s']:.1f} items/s over"
        f" the whole run of {row['run_elapsed_s']:.1f} s)"
        f" (final rate {row['final_rate'] or 0:.1f}/s)"
    ]
    complete = row["ok"] == row["items"] and row["failed"] == 0
    lines.append(f"         every item completes: {'PASS' if complete else 'MISS'}")
    if row["scenario"] == "10x":
        verdict = "PASS" if row["throttled_share"] < 0.10 else "MISS"
        lines.append(f"         throttled < 10% of attempts: {verdict}")
    else:
        share = "PASS" if row["quota_share"] >= 0.95 else "MISS"
        throttled = "PASS" if row["throttled_share"] < 0.01 else "MISS"
        lines.append(f"         >= 95% of the quota: {share}; throttled < 1%: {throttled}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000, help="items per scenario (3,000)")
    parser.add_argument("--concurrency", type=int, default=64, help="the job's concurrency (64)")
    parser.add_argument("--start", type=float, default=10.0, help="the storm's start, x quota (10)")
    parser.add_argument("--only", choices=["10x", "default"], help="run one scenario")
    parser.add_argument("--limit-s", type=float, default=900.0, help="give up a run after S s")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    emulator = Emulator()
    rows: list[dict[str, Any]] = []
    try:
        plan = [("10x", QUOTA * args.start), ("default", None)]
        for label, rate in plan:
            if args.only in (None, label):
                row = scenario(emulator, label, rate, args)
                rows.append(row)
                print("\n".join(report(row)), flush=True)
    finally:
        emulator.stop()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if any(r["failed"] or r["ok"] != r["items"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
