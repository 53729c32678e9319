"""The HTML report: self-contained, and its plots render in a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from trio.testing import MockClock

from harness.load import LoadResult, LoadRunner, ThresholdResult, evaluate, parse_scenario
from harness.reporting import (
    ReportSection,
    ReportTable,
    load_section,
    render_html_report,
    stats_section,
    write_html_report,
)
from harness.stats import StatsBook
from harness.transport import Call, MockTransport, Reply

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (CI installs it: see .ci/run)"
)


def load_result() -> tuple[LoadResult, list[ThresholdResult]]:
    """A 5 s mixed load on the mock transport in mock time, with latency growing over time."""
    scenario = parse_scenario(
        {
            "name": "mix <&>",
            "rate": 40,
            "duration": 5,
            "ramp": "2s",
            "operations": [
                {"operation": "iot:CreateThing", "weight": 3, "params": {"thingName": "t{n}"}},
                {"operation": "iot:ListThings", "weight": 1},
            ],
            "thresholds": ["p99<50ms", "errors<5%"],
        }
    )

    async def handler(call: Call) -> Reply:
        await anyio.sleep(0.005 + anyio.current_time() % 5 / 100)
        if call.operation == "ListThings" and int(anyio.current_time() * 40) % 17 == 0:
            return Reply(400, error_code="ThrottlingException")
        return Reply(200, output={})

    async def go() -> LoadResult:
        return await LoadRunner(scenario, MockTransport(handler)).run()

    result = anyio.run(
        go, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)}
    )
    return result, evaluate(scenario.thresholds, result)


def render(html: Path, tmp_path: Path) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class TestLoadReport:
    def test_is_one_self_contained_file(self, tmp_path: Path) -> None:
        result, checks = load_result()
        path = tmp_path / "out" / "report.html"
        write_html_report(path, "load", [load_section(result, checks)])
        text = path.read_text()
        for external in ("http://", "https://", "<script", "<link", "@import", "url("):
            assert external not in text
        assert "mix &lt;&amp;&gt;" in text and "<&>" not in text
        assert not list(path.parent.glob(".*.tmp"))

    @needs_chromium
    def test_plots_render_in_chromium(self, tmp_path: Path) -> None:
        result, checks = load_result()
        path = tmp_path / "report.html"
        write_html_report(path, "harness load", [load_section(result, checks)])
        dom = render(path, tmp_path)
        charts = re.findall(r'<svg class="chart"', dom)
        # throughput; per operation: percentile plot, latency over time, throughput
        assert len(charts) == 1 + 2 * 3
        series = re.findall(
            r'<path class="series" data-label="([^"]+)" data-points="(\d+)" d="M', dom
        )
        labels = {label for label, _ in series}
        assert {"target", "sent", "completed", "corrected", "raw"} <= labels
        assert {"corrected p50", "corrected p99", "raw p50", "raw p99"} <= labels
        assert all(int(points) >= 2 for _, points in series)
        percentile_curves = [int(n) for label, n in series if label == "corrected"]
        assert min(percentile_curves) >= 10
        for axis in ("percentile", "latency (ms)", "time (s)", "requests/s"):
            assert f">{axis}</text>" in dom
        for tick in (">0%<", ">90%<", ">99%<"):
            assert tick in dom
        assert "Thresholds" in dom and "FAIL" in dom and "pass" in dom
        assert "ThrottlingException" in dom


class TestOtherSections:
    def test_a_stats_book_section_plots_call_and_attempt_latency(self) -> None:
        book = StatsBook()
        for i in range(200):
            stats = book.stats("greengrassv2.CreateDeployment")
            stats.record_attempt(0.01 + i / 10000)
            stats.record_call(0.01 + i / 10000, ok=i % 50 != 0, attempts=1, error_code="Conflict")
        html = render_html_report("run", [stats_section("run fleet", book, facts={"job": "x"})])
        assert html.count('<svg class="chart"') == 1
        assert 'data-label="call"' in html and 'data-label="attempt"' in html
        assert "<td>Conflict</td>" in html

    def test_a_table_only_section(self) -> None:
        violations = ReportTable(
            "Violations", ["operation", "check"], [["iot.CreateThing", "status"]], ["fail"]
        )
        html = render_html_report("fuzz", [ReportSection("fuzz", tables=[violations])])
        assert '<tr class="fail"><td>iot.CreateThing</td>' in html
        assert "<svg" not in html


def test_harness_run_writes_the_same_kind_of_report(tmp_path: Path) -> None:
    job = tmp_path / "tiny.yaml"
    job.write_text(
        "name: tiny\nsteps:\n  - name: things\n    service: iot\n    operation: CreateThing\n"
        '    items: {count: 20}\n    params: {thingName: "tiny-{{ index }}"}\n'
    )
    report = tmp_path / "run.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(job),
            "--no-progress",
            "--journal",
            str(tmp_path / "j.jsonl"),
            "--html",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    html = report.read_text()
    assert "Run: tiny" in html and "<td>iot.CreateThing</td><td>20</td>" in html
    assert html.count('<svg class="chart"') == 1 and 'data-label="call"' in html
