"""harness load against a real emulator process: latency, a stall, workers, thresholds, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from harness.cli import main
from harness.load import LoadRunner, TransportOptions, parse_scenario, run_load
from harness.stats import read_hdr_log
from harness.transport import Call

CREDENTIALS = ("AKIDEXAMPLE", "harness-test")


class Emulator:
    """``python -m harness emulator --port 0`` in a child process (so that it can be paused)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on http://127.0.0.1:"):
            self.stop()
            pytest.fail(f"the emulator did not start: {line!r}")
        self.url = line.removeprefix("listening on ")

    def options(self) -> TransportOptions:
        return TransportOptions(self.url, "us-east-1", None, CREDENTIALS)

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)  # in case a test left it paused
        self.proc.terminate()
        self.proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Emulator]:
    """Answers every request after 50 ms."""
    emulator = Emulator("--latency-ms", "50")
    yield emulator
    emulator.stop()


def things(rate: float, duration: float, **extra: Any) -> Any:
    return parse_scenario(
        {
            "name": "things",
            "rate": rate,
            "duration": duration,
            "operations": [{"operation": "iot:CreateThing", "params": {"thingName": "t-{n}"}}],
            **extra,
        }
    )


@pytest.mark.slow
def test_p50_is_the_service_latency_and_the_hdr_log_has_both_tags(
    slow_emulator: Emulator, tmp_path: Path
) -> None:
    result = run_load(things(50, 3), slow_emulator.options())
    corrected = result.corrected_latency().summary()
    raw = result.total.stats.call_latency.summary()
    print(
        f"50 ms emulator, 50/s for 3 s: corrected p50 {corrected.p50 * 1000:.1f} ms, "
        f"raw p50 {raw.p50 * 1000:.1f} ms, rate {result.rate_ratio:.1%}"
    )
    assert result.total.stats.calls == 150 and result.total.stats.failures == 0
    assert 0.050 <= corrected.p50 < 0.065
    assert 0.050 <= raw.p50 <= corrected.p50
    assert result.rate_ratio >= 0.95
    log = tmp_path / "run.hlog"
    result.write_hdr(log)
    tags = read_hdr_log(log)
    assert set(tags) == {"iot.CreateThing.corrected", "iot.CreateThing.raw"}
    assert tags["iot.CreateThing.corrected"].count == 150
    lines = [line for line in log.read_text().splitlines() if line.startswith("Tag=")]
    assert len(lines) >= 6  # one interval per second per tag


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_stall_shows_in_corrected_latency_and_hides_in_raw() -> None:
    """The classic coordinated-omission demonstration: pause the service for 1 s mid-run."""
    emulator = Emulator()
    try:
        scenario = things(200, 3, connections=2)
        async with emulator.options().build(scenario.connections) as transport:
            # A first call warms both ends (client model, emulator routes) outside the run.
            await transport.send(Call("iot", "ListThings", {}))

            async def stall() -> None:
                await anyio.sleep(1.0)
                os.kill(emulator.proc.pid, signal.SIGSTOP)
                try:
                    await anyio.sleep(1.0)
                finally:
                    os.kill(emulator.proc.pid, signal.SIGCONT)

            async with anyio.create_task_group() as tg:
                tg.start_soon(stall)
                result = await LoadRunner(scenario, transport).run()
    finally:
        emulator.stop()
    corrected = result.corrected_latency().percentile(99)
    raw = result.total.stats.call_latency.percentile(99)
    print(
        f"1 s stall at 200/s, 2 connections: corrected p99 {corrected * 1000:.1f} ms, "
        f"raw p99 {raw * 1000:.1f} ms, raw max {result.total.stats.call_latency.max * 1000:.1f} ms"
    )
    assert result.total.stats.failures == 0
    assert corrected >= 0.8
    assert raw < 0.4
    assert result.late_starts > 100  # everything due during the stall was sent late


@pytest.mark.slow
def test_two_workers_split_the_schedule_and_merge(slow_emulator: Emulator) -> None:
    scenario = things(40, 1.5)
    result = run_load(scenario, slow_emulator.options(), workers=2)
    assert result.workers == 2
    assert result.scheduled == result.sent == 60
    stats = result.operations["iot.CreateThing"].stats
    assert stats.calls == stats.successes == 60
    assert result.corrected_latency().count == 60
    assert sum(p.count for p in result.sends.points()) == 60
    assert result.rate_ratio >= 0.9
    assert result.corrected_latency().percentile(50) >= 0.05


class TestCommand:
    def run(self, *args: str) -> int:
        try:
            main(["load", *args])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    def test_satisfied_thresholds_pass_and_outputs_are_written(
        self, slow_emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        report = tmp_path / "load.json"
        code = self.run(
            "--operation",
            "iot:CreateThing",
            "thingName=cli-{n}",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--endpoint",
            slow_emulator.url,
            "--threshold",
            "p50>=45ms",
            "--threshold",
            "CreateThing:max<2s",
            "--threshold",
            "errors<1%",
            "--json",
            str(report),
            "--html",
            str(tmp_path / "load.html"),
            "--hdr",
            str(tmp_path / "load.hlog"),
        )
        out = capsys.readouterr().out
        assert code == 0, out
        assert "threshold pass p50>=45ms" in out
        document = json.loads(report.read_text())
        assert document["achieved"]["sent"] == 20
        assert [t["ok"] for t in document["thresholds"]] == [True, True, True]
        assert document["operations"][0]["latency"]["corrected"]["count"] == 20
        assert document["timeline"][0]["target"] == 20
        assert (tmp_path / "load.html").read_text().count("<svg") >= 3
        assert read_hdr_log(tmp_path / "load.hlog")

    def test_a_broken_threshold_fails_the_run(
        self, slow_emulator: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = self.run(
            "-o",
            "iot:CreateThing",
            "thingName=broken-{n}",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--endpoint",
            slow_emulator.url,
            "--threshold",
            "p99<10ms",
            "--threshold",
            "errors<1%",
            "--no-progress",
        )
        out = capsys.readouterr().out
        assert code == 1
        assert "threshold FAIL p99<10ms" in out and "over by" in out
        assert "threshold pass errors<1%" in out

    @pytest.mark.parametrize("bad", ["p99<<10ms", "p99<10", "speed<1s", "ListThings:p99<1s"])
    def test_a_malformed_threshold_is_a_usage_error(
        self, bad: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = self.run(
            "-o",
            "iot:CreateThing",
            "thingName=x",
            "--rate",
            "1",
            "--duration",
            "1s",
            "--threshold",
            bad,
        )
        assert code == 2
        assert repr(bad) in capsys.readouterr().err
