"""How long the emulator takes to save and restore a large state (issue 10: < 5 s at 100,000 things).

    .venv/bin/python perf/emulator_restore.py [--things N] [--groups G] [--per-thing K]
                                              [--http N] [--rounds R] [--json out.json] [--quick]

1. Builds ``--things`` things (unique serial attribute, a shared site attribute, every other one
   typed) in ``--groups`` thing groups, each thing a member of ``--per-thing`` groups, directly
   through the IoT state API (the same index updates the handlers make), in-process;
2. times :func:`encode` (serialization on the event loop) and the atomic write, in-process;
3. times :func:`load_into` into a fresh core (wall and CPU), ``--rounds`` times;
4. end to end with real processes: starts ``harness emulator --state-dir`` on that file and
   times spawn-to-"listening" (and, for comparison, an empty start), creates ``--http`` more
   things through HTTP, stops it with SIGTERM (timing the final save), starts it again and
   checks every thing and a membership listing came back.

CPU seconds are the stable figure on a noisy machine; wall seconds move with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.emulator._core import EmulatorCore
from harness.emulator._persist import encode, load_into, write_atomic
from harness.emulator._state import Table
from harness.emulator.services.iot import IotState, Thing, ThingGroup

ACCOUNT = "123456789012"
REGION = "us-east-1"
TARGET_S = 5.0


def build(things: int, groups: int, per_thing: int) -> EmulatorCore:
    """A core holding ``things`` things in ``groups`` groups, as the handlers would leave it."""
    core = EmulatorCore()
    state: IotState = core.state(ACCOUNT, REGION, "iot")
    state.table("ThingType").put("sensor", {"thingTypeName": "sensor", "__key": "sensor"})
    made = []
    for g in range(groups):
        name = f"group-{g}"
        group = ThingGroup(
            name,
            f"{g:032x}",
            f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{name}",
            None,
            None,
            {},
            time.time(),
        )
        state.groups.put(name, group)
        state.roots.put(name, group)
        made.append(group)
    for i in range(things):
        name = f"thing-{i:06d}"
        type_name = "sensor" if i % 2 else None
        attributes = {"serial": f"SN{i:08d}", "site": f"site-{i % 50}"}
        thing = Thing(
            name,
            f"{i:032x}",
            f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}",
            type_name,
            attributes,
            None,
        )
        state.things.put(name, thing)
        state.reindex(thing, (None, {}), (type_name, attributes))
        if groups:
            thing.groups = Table()
            for k in range(per_thing):
                group = made[(i * 7 + k * 13) % groups]
                if group.name not in thing.groups:
                    thing.groups.put(group.name, group)
                    group.things.put(name, thing)
    return core


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, state_dir: Path | None) -> None:
        args = ["--state-dir", str(state_dir)] if state_dir is not None else []
        self.began = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness",
                "emulator",
                "--port",
                "0",
                "--snapshot-interval",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        self.start_s = time.perf_counter() - self.began
        self.start_cpu_s = _cpu_seconds(self.proc.pid)
        if not line.startswith("listening on "):
            raise SystemExit(f"emulator did not start: {line} {self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.url = line.removeprefix("listening on ")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=120) as resp:
            return json.loads(resp.read())

    def create_things(self, count: int, prefix: str) -> None:
        def work(part: range) -> None:
            for i in part:
                request = urllib.request.Request(
                    f"{self.url}/things/{prefix}-{i}",
                    data=b"{}",
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                urllib.request.urlopen(request, timeout=60).read()

        threads = [threading.Thread(target=work, args=(range(k, count, 8),)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stop(self) -> float:
        began = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=600)
        if self.proc.returncode != 0:
            raise SystemExit(f"emulator exited {self.proc.returncode}: {err}")
        return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--things", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--per-thing", type=int, default=2, help="group memberships per thing")
    parser.add_argument("--http", type=int, default=1_000, help="things created through HTTP")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="2,000 things, 1 round (CI)")
    args = parser.parse_args()
    if args.quick:
        args.things, args.groups, args.http, args.rounds = 2_000, 50, 50, 1

    results: dict[str, Any] = {
        "things": args.things,
        "groups": args.groups,
        "memberships_per_thing": args.per_thing,
    }
    core, build_s, _ = timed(build, args.things, args.groups, args.per_thing)
    results["build_s"] = round(build_s, 3)
    (header, payload), encode_s, encode_cpu = timed(encode, core)
    results.update(
        encode_s=round(encode_s, 3),
        encode_cpu_s=round(encode_cpu, 3),
        file_bytes=len(header) + len(payload),
    )
    core = None  # only the file from now on
    with tempfile.TemporaryDirectory(prefix="harness-restore-") as tmp:
        state_dir = Path(tmp) / "state"
        state_dir.mkdir(mode=0o700)
        path = state_dir / "emulator.state"
        _, write_s, _ = timed(write_atomic, path, header, payload)
        results["write_s"] = round(write_s, 3)
        blob = path.read_bytes()
        walls, cpus = [], []
        for _ in range(args.rounds):
            fresh = EmulatorCore()
            _, wall, cpu = timed(load_into, fresh, blob, str(path), settings=True)
            walls.append(wall)
            cpus.append(cpu)
            assert len(fresh.state(ACCOUNT, REGION, "iot").things) == args.things
        blob = b""
        results.update(load_s=[round(w, 3) for w in walls], load_cpu_s=[round(c, 3) for c in cpus])

        empty = Server(None)
        results["empty_start_s"] = round(empty.start_s, 3)
        results["empty_start_cpu_s"] = round(empty.start_cpu_s, 3)
        empty.stop()
        server = Server(state_dir)
        results["start_with_state_s"] = round(server.start_s, 3)
        server.create_things(args.http, "http")
        results["save_at_stop_s"] = round(server.stop(), 3)
        server = Server(state_dir)
        results["restart_s"] = round(server.start_s, 3)
        results["restart_cpu_s"] = round(server.start_cpu_s, 3)
        stats = server.get("/_harness/stats")
        count = stats["resources"]["iot"]["Thing"]
        # Group memberships came back too (every thing was put in --per-thing groups).
        groups_of = server.get("/things/thing-000001/thing-groups")["thingGroups"]
        server.stop()
        if count != args.things + args.http:
            raise SystemExit(f"restored {count} things, expected {args.things + args.http}")
        if args.groups and len(groups_of) != min(args.per_thing, args.groups):
            raise SystemExit(f"thing-000001 is in {len(groups_of)} groups after the restart")
        results["restored_things"] = count
    results["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["load_avg"] = os.getloadavg()

    load = statistics.median(walls)
    restart_extra = results["restart_s"] - results["empty_start_s"]
    print(
        f"state: {args.things:,} things in {args.groups:,} groups ({args.per_thing} memberships each), "
        f"{results['file_bytes'] / 1e6:.1f} MB on disk"
    )
    print(
        f"save: encode {results['encode_s']:.2f} s wall ({results['encode_cpu_s']:.2f} s CPU) on the loop, "
        f"write+fsync {results['write_s']:.2f} s; SIGTERM-to-exit with the final save "
        f"{results['save_at_stop_s']:.2f} s"
    )
    print(
        f"restore (load_into): median {load:.2f} s wall, {statistics.median(cpus):.2f} s CPU "
        f"over {args.rounds} round(s): {', '.join(f'{w:.2f}' for w in walls)}"
    )
    print(
        f"process start to 'listening': empty {results['empty_start_s']:.2f} s, "
        f"with the state {results['start_with_state_s']:.2f} s, after {args.http:,} more through HTTP "
        f"{results['restart_s']:.2f} s (+{restart_extra:.2f} s for the state); "
        f"{count:,} things restored"
    )
    print(
        f"CPU to 'listening' (what a restart takes on an idle core): empty "
        f"{results['empty_start_cpu_s']:.2f} s, restart with the state {results['restart_cpu_s']:.2f} s"
    )
    verdict = "met" if results["restart_s"] < TARGET_S else "NOT met"
    cpu_verdict = "met" if results["restart_cpu_s"] < TARGET_S else "NOT met"
    print(
        f"target: a restart with {args.things:,} things listens again within {TARGET_S:.0f} s: "
        f"wall {verdict} ({results['restart_s']:.2f} s, of which the restore {load:.2f} s; "
        f"load average {results['load_avg'][0]:.1f}), CPU {cpu_verdict} "
        f"({results['restart_cpu_s']:.2f} s)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
