"""State files that must be refused, and crashes that must not tear one.

Every refusal is driven through a real ``harness emulator --state-dir`` process: exit status 2,
one line naming the file and the reason, no traceback, and the file left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.emulator._core import EmulatorCore
from harness.emulator._persist import MAGIC, encode, load_into, write_atomic
from harness.emulator._snapshots import StateStore
from harness.emulator.services.iot import Thing
from harness.errors import StateFileError

ACCOUNT = "123456789012"


def harness(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(120)
    line = lines[0].strip() if lines else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise AssertionError(f"did not start: {line!r} {proc.communicate(timeout=30)[1]}")
    return proc, line.removeprefix("listening on ")


def assert_refused(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def seeded_core(things: int = 3) -> EmulatorCore:
    core = EmulatorCore()
    state = core.state(ACCOUNT, "us-east-1", "iot")
    for i in range(things):
        name = f"thing-{i}"
        arn = f"arn:aws:iot:us-east-1:{ACCOUNT}:thing/{name}"
        state.things.put(name, Thing(name, f"{i:032x}", arn, None, {"n": str(i)}, None))
    return core


def state_file(folder: Path, things: int = 3) -> Path:
    header, payload = encode(seeded_core(things))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "emulator.state"
    write_atomic(path, header, payload)
    return path


def with_header(path: Path, **changes: Any) -> None:
    data = path.read_bytes()
    magic, header, payload = data.split(b"\n", 2)
    fields = {**json.loads(header), **changes}
    path.write_bytes(magic + b"\n" + json.dumps(fields).encode() + b"\n" + payload)


def with_payload(path: Path, payload: bytes) -> None:
    """Replace the payload and make the header's length and checksum match it."""
    digest = hashlib.blake2b(payload, digest_size=32).hexdigest()
    data = path.read_bytes()
    magic, header, _ = data.split(b"\n", 2)
    fields = {**json.loads(header), "payload_bytes": len(payload), "payload_blake2b": digest}
    path.write_bytes(magic + b"\n" + json.dumps(fields).encode() + b"\n" + payload)


class _System:
    """Pickles as a call of os.system: what a hostile payload would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------- refusals
def test_an_unknown_format_version_is_refused(tmp_path: Path) -> None:
    path = state_file(tmp_path)
    with_header(path, format=99, harness="9.9.9")
    before = path.read_bytes()
    assert_refused(
        harness("--state-dir", str(tmp_path)),
        str(path),
        "state format version 99",
        "harness 9.9.9",
        "reads only version 1",
    )
    assert path.read_bytes() == before  # refused, never overwritten


def test_a_file_from_harness_with_other_state_classes_is_refused(tmp_path: Path) -> None:
    path = state_file(tmp_path)
    with_header(path, layout="0000000000000000", harness="0.0.1")
    assert_refused(harness("--state-dir", str(tmp_path)), "harness 0.0.1", "state classes differ")


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        ("truncate", ["truncated or corrupt"]),
        ("flip", ["corrupt (its checksum does not match)"]),
        ("garbage", ["not an emulator state file"]),
        ("empty", ["not an emulator state file"]),
        ("header", ["header is corrupt"]),
        ("os.system", ["inconsistent", "posix.system"]),
        ("harness class", ["inconsistent", "harness.emulator._state.Table"]),
        ("wrong shape", ["inconsistent"]),
        ("directory", ["cannot read"]),
    ],
)
def test_a_corrupt_state_file_is_refused_with_exit_2(
    damage: str, fragments: list[str], tmp_path: Path
) -> None:
    path = state_file(tmp_path)
    data = path.read_bytes()
    marker = tmp_path / "pwned"
    if damage == "truncate":
        path.write_bytes(data[: len(data) - 10])
    elif damage == "flip":
        path.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    elif damage == "garbage":
        path.write_bytes(random.Random(1).randbytes(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "header":
        path.write_bytes(MAGIC + b"{not json\n" + data.split(b"\n", 2)[2])
    elif damage == "os.system":
        with_payload(path, pickle.dumps({"states": [_System(marker)]}))
    elif damage == "harness class":
        things = seeded_core().state(ACCOUNT, "us-east-1", "iot").things
        with_payload(path, pickle.dumps({"states": [], "table": things}))
    elif damage == "wrong shape":
        with_payload(path, pickle.dumps({"states": 5}))
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None
    assert_refused(harness("--state-dir", str(tmp_path)), "emulator.state", *fragments)
    assert not marker.exists()
    if before is not None:
        assert path.read_bytes() == before


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert_refused(harness("--state-dir", str(target)), str(target), "not a directory")


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_a_bad_snapshot_interval_exits_2(value: str, tmp_path: Path) -> None:
    done = harness("--state-dir", str(tmp_path), "--snapshot-interval", value)
    assert done.returncode == 2 and "--snapshot-interval" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_two_emulators_cannot_share_a_state_dir(tmp_path: Path) -> None:
    proc, _ = start("--state-dir", str(tmp_path))
    try:
        assert_refused(
            harness("--state-dir", str(tmp_path)), "in use by another emulator", f"pid {proc.pid}"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_an_unloadable_snapshot_leaves_the_running_state_alone(tmp_path: Path) -> None:
    core = seeded_core(2)
    store = StateStore(core, tmp_path)
    store.open()
    try:
        store.snapshot("good")
        broken = tmp_path / "snapshots" / "good.snapshot"
        broken.write_bytes(broken.read_bytes()[:-1])
        core.state(ACCOUNT, "us-east-1", "iot").things.delete("thing-0")
        status, _, body = store.admin("POST", "restore", b'{"name": "good"}')
        assert status == 422 and b"truncated or corrupt" in body
        assert len(core.state(ACCOUNT, "us-east-1", "iot").things) == 1
        listing = json.loads(store.admin("GET", "snapshots", b"")[2])["snapshots"]
        assert listing[0]["name"] == "good"
    finally:
        store.close()


def test_the_loader_runs_no_code_from_a_payload(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    header, _ = encode(EmulatorCore())
    payload = pickle.dumps(_System(marker))
    fields = {
        **json.loads(header.split(b"\n")[1]),
        "payload_bytes": len(payload),
        "payload_blake2b": hashlib.blake2b(payload, digest_size=32).hexdigest(),
    }
    blob = MAGIC + json.dumps(fields).encode() + b"\n" + payload
    with pytest.raises(StateFileError, match=r"posix\.system"):
        load_into(EmulatorCore(), blob, "hostile", settings=True)
    assert not marker.exists()


# -------------------------------------------------------------------------------- crashes
_BLOCKED_WRITER = """
import os, sys, time
from pathlib import Path
from harness.emulator._persist import write_atomic

def blocked(fd):
    print("writing", flush=True)
    time.sleep(600)

os.fsync = blocked
write_atomic(Path(sys.argv[1]), b"HARNESS-EMULATOR-STATE\\n", b"half a new state")
"""


def test_a_writer_killed_before_its_rename_leaves_the_previous_file(tmp_path: Path) -> None:
    path = state_file(tmp_path, things=5)
    before = path.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", _BLOCKED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=60)
    assert [p.name for p in tmp_path.glob(".emulator.state.*.tmp")], "no temporary file to clean"
    assert path.read_bytes() == before
    proc, url = start("--state-dir", str(tmp_path))
    try:
        assert not list(tmp_path.glob(".*.tmp"))  # the torn temporary was removed
        with urllib.request.urlopen(f"{url}/_harness/stats", timeout=60) as resp:
            assert json.loads(resp.read())["resources"]["iot"]["Thing"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_sigkill_during_periodic_saves_never_tears_the_state(tmp_path: Path) -> None:
    """Kill -9 at random moments while a client writes and the emulator saves every 50 ms."""
    state_file(tmp_path, things=20_000)  # a few MB: each save takes a while
    rng = random.Random(7)
    counts: list[int] = []
    for _ in range(4):
        proc, url = start("--state-dir", str(tmp_path), "--snapshot-interval", "0.05")
        with urllib.request.urlopen(f"{url}/_harness/stats", timeout=60) as resp:
            counts.append(json.loads(resp.read())["resources"]["iot"]["Thing"])
        stop = threading.Event()
        writer = threading.Thread(target=_create_things, args=(url, stop, len(counts)))
        writer.start()
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        stop.set()
        writer.join(60)
        proc.communicate(timeout=60)
    proc, url = start("--state-dir", str(tmp_path))
    try:
        with urllib.request.urlopen(f"{url}/_harness/stats", timeout=60) as resp:
            counts.append(json.loads(resp.read())["resources"]["iot"]["Thing"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    # Every start loaded a whole state; nothing saved was lost; the periodic saves did save.
    assert counts == sorted(counts) and counts[0] == 20_000 and counts[-1] > 20_000, counts


def _create_things(url: str, stop: threading.Event, round_: int) -> None:
    body = b'{"attributePayload": {"attributes": {"k": "v"}}}'
    i = 0
    while not stop.is_set():
        request = urllib.request.Request(
            f"{url}/things/r{round_}-{i}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).read()
        except OSError:
            return  # the server was killed
        i += 1


def test_a_failed_periodic_save_is_reported_and_the_final_one_exits_2(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    proc, url = start("--state-dir", str(state_dir), "--snapshot-interval", "0.1")
    urllib.request.urlopen(
        urllib.request.Request(f"{url}/things/doomed", data=b"{}", method="POST"), timeout=60
    ).read()
    shutil.rmtree(state_dir)  # every later write fails
    urllib.request.urlopen(
        urllib.request.Request(f"{url}/things/unsaved", data=b"{}", method="POST"), timeout=60
    ).read()
    time.sleep(1.0)
    with urllib.request.urlopen(f"{url}/_harness/snapshots", timeout=60) as resp:
        assert "cannot save the emulator state" in json.loads(resp.read())["last_error"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert "warning: " in err and "cannot save the emulator state" in err.splitlines()[-1]


# ------------------------------------------------------------------------------- settings
def test_saved_settings_come_back_unless_a_flag_sets_them(tmp_path: Path) -> None:
    proc, url = start("--state-dir", str(tmp_path))
    config = {"proton_registration_delay": 7.0, "fault_rate": 0.25}
    request = urllib.request.Request(
        f"{url}/_harness/config",
        data=json.dumps(config).encode(),
        method="PUT",
        headers={"X-Harness-Admin": "1", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=60).read()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)

    proc, url = start("--state-dir", str(tmp_path), "--fault-rate", "0")
    try:
        with urllib.request.urlopen(f"{url}/_harness/stats", timeout=60) as resp:
            settings = json.loads(resp.read())["settings"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert settings["proton_registration_delay"] == 7.0  # saved, no flag
    assert settings["fault_rate"] == 0.0  # the flag wins
