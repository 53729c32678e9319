"""The save/restore benchmark runs end to end (quick mode) and restores every thing.

No timing is asserted (performance targets are read from ``perf/emulator_restore.py``'s output
by people): the run must complete, restore every thing it made, and report its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "emulator_restore.py"


def test_quick_run_restores_every_thing(tmp_path: Path) -> None:
    out = tmp_path / "restore.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert results["restored_things"] == results["things"] + 50
    assert results["file_bytes"] > 0 and len(results["load_s"]) == 1
    assert "restore (load_into): median" in done.stdout
    assert "target: a restart with 2,000 things" in done.stdout
