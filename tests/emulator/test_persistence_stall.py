"""A periodic save never stalls the emulator, however large its state.

A save used to serialize the state on the event loop: about 0.8 s of CPU per 100,000 things,
during which every request waited. It now runs in a forked child (a copy-on-write view of the
state), as Redis's BGSAVE does; here a health probe polls the emulator back to back while it
saves a 50,000-thing state several times.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from test_no_stall import HealthProbe

from harness.emulator._snapshots import StateStore

PERF = Path(__file__).resolve().parents[2] / "perf" / "emulator_restore.py"


def seeded_state(directory: Path, things: int) -> None:
    """Write a state file holding ``things`` things in 100 groups (perf's builder)."""
    spec = importlib.util.spec_from_file_location("emulator_restore", PERF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store = StateStore(module.build(things, 100, 2), directory)
    store.open()
    store.save()
    store.close()


def admin(url: str, path: str, body: bytes | None = None) -> dict[str, object]:
    request = urllib.request.Request(url + path, data=body, method="PUT" if body else "GET")
    request.add_header("X-Harness-Admin", "1")
    with urllib.request.urlopen(request, timeout=60) as answer:
        result: dict[str, object] = json.loads(answer.read())
        return result


def test_periodic_saves_of_a_large_state_do_not_stall_requests(tmp_path: Path) -> None:
    seeded_state(tmp_path, 50_000)
    command = [sys.executable, "-m", "harness", "emulator", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--state-dir", str(tmp_path), "--snapshot-interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), proc.stderr.read() if proc.stderr else line
        url = line.removeprefix("listening on ")
        probe = HealthProbe(url)
        try:
            # Each change makes the next tick save the whole state again.
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                admin(url, "/_harness/config", b'{"fault_rate": 0}')
                time.sleep(0.25)
        finally:
            probe.stop()
        saves = admin(url, "/_harness/snapshots")
    finally:
        proc.terminate()
        proc.communicate(timeout=120)
    assert not probe.failures
    assert int(str(saves["saves"])) >= 3, saves
    # Serializing 50,000 things takes ~0.4 s of CPU: on the loop, each save would be a gap
    # that long. The bound is loose for a loaded 2-core machine.
    assert probe.worst_gap() < 0.15, f"worst gap {probe.worst_gap() * 1000:.0f} ms"
