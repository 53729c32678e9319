"""A step with both ``from:`` and ``after:`` holds its input in bounded memory (spilling to an
unnamed temporary file), in order, without blocking its upstream."""

from __future__ import annotations

import datetime
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from harness.engine._spill import SpillQueue, relay


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def item(n: int) -> dict[str, Any]:
    return {"index": n, "name": f"thing-{n}", "when": datetime.date(2024, 1, 1 + n % 28)}


class TestSpillQueue:
    def test_order_and_values_survive_the_file(self, tmp_path: Path) -> None:
        queue = SpillQueue(memory=10, directory=tmp_path)
        values = [item(n) for n in range(5000)] + [b"raw\x00bytes", (1, "tuple"), {"a": {1, 2}}]
        for value in values:
            queue.push(value)
        assert len(queue) == len(values)
        assert queue.spilled_total == len(values) - 10
        assert [queue.pop() for _ in range(len(values))] == values
        assert len(queue) == 0
        with pytest.raises(IndexError):
            queue.pop()
        queue.close()

    def test_the_file_is_private_unnamed_and_reused(self, tmp_path: Path) -> None:
        queue = SpillQueue(memory=1, directory=tmp_path)
        for n in range(20_000):
            queue.push(item(n))
        handle = queue._file  # the spill file itself, to check what the OS says about it
        assert handle is not None
        assert stat.S_IMODE(os.fstat(handle.fileno()).st_mode) == 0o600
        assert os.fstat(handle.fileno()).st_size > 100_000
        assert list(tmp_path.iterdir()) == []  # no name: nothing to leave behind
        while queue:
            queue.pop()
        assert os.fstat(handle.fileno()).st_size == 0  # emptied: the space is given back
        queue.close()
        assert handle.closed

    def test_fifo_with_interleaving(self, tmp_path: Path) -> None:
        queue = SpillQueue(memory=4, directory=tmp_path)
        expected, seen = list(range(3000)), []
        for n in expected:
            queue.push(n)
            if n % 3 == 2:
                seen.append(queue.pop())
        while queue:
            seen.append(queue.pop())
        assert seen == expected
        queue.close()


@pytest.mark.anyio
async def test_relay_never_blocks_the_sender_before_ready_then_replays_in_order(
    tmp_path: Path,
) -> None:
    count = 20_000  # far beyond every buffer: 16 in the channel, 8 in memory
    upstream_send, taken = anyio.create_memory_object_stream[int](16)
    relayed, downstream = anyio.create_memory_object_stream[int](16)
    ready = anyio.Event()
    queue = SpillQueue(memory=8, directory=tmp_path)
    received: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay, taken, relayed, [ready], queue)
        with anyio.fail_after(60):  # a blocked sender fails here instead of hanging
            async with upstream_send:
                for n in range(count):
                    await upstream_send.send(n)
        assert queue.spilled_total >= count - 8 - 16
        assert received == []
        ready.set()
        with anyio.fail_after(60):
            async with downstream:
                received.extend([n async for n in downstream])
    assert received == list(range(count))
    assert queue._file is None  # closed (and so deleted) at the end


@pytest.mark.anyio
async def test_relay_gives_back_pressure_once_ready(tmp_path: Path) -> None:
    upstream_send, taken = anyio.create_memory_object_stream[int](4)
    relayed, downstream = anyio.create_memory_object_stream[int](4)
    ready = anyio.Event()
    ready.set()
    queue = SpillQueue(memory=8, directory=tmp_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay, taken, relayed, [ready], queue)
        sent = 0
        with anyio.move_on_after(2):
            for n in range(10_000):
                await upstream_send.send(n)
                sent += 1
        # Nobody reads downstream: the sender stops after the buffers fill, nothing spills.
        assert sent < 40
        assert queue.spilled_total == 0
        await upstream_send.aclose()
        async with downstream:
            got = [n async for n in downstream]
    assert got == list(range(sent))


SCRIPT = """
import sys, anyio
from pathlib import Path
from harness.engine import Engine, Journal, parse_job
from harness.throttle import BucketRegistry
from harness.transport import Reply

count, directory = int(sys.argv[1]), Path(sys.argv[2])
job = parse_job({"name": "spill", "concurrency": 16, "steps": [
    {"name": "things", "service": "iot", "operation": "CreateThing", "items": {"count": count},
     "params": {"thingName": "t-{{ index }}"}},
    {"name": "gate", "service": "iot", "operation": "CreateThingGroup", "after": ["things"],
     "params": {"thingGroupName": "g"}},
    {"name": "describe", "service": "iot", "operation": "DescribeThing",
     "items": {"from": "things"}, "after": ["gate"],
     "params": {"thingName": "{{ item.thingName }}"}},
]})
registry = BucketRegistry()
for op in ("CreateThing", "CreateThingGroup", "DescribeThing"):
    registry.override("iot", op, 1e9)

class Transport:  # keeps nothing, unlike MockTransport
    identity, region = "t", "us-east-1"
    async def send(self, call):
        name = call.params.get("thingName") or call.params.get("thingGroupName")
        return Reply(200, output={"thingArn": "arn:aws:iot:::thing/" + name})
    async def aclose(self):
        pass

def status(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))

engine = Engine(job, Transport(), registry=registry)
anyio.run(engine.preflight)
engine.journal = Journal(directory / "journal.jsonl", job.name)
# The peak RSS of this run alone: reset the kernel's high-water mark (ru_maxrss would also
# count the pages of the parent process this one was forked from).
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
summary = anyio.run(engine.run)
engine.journal.close()
growth = status("VmHWM") - before
print({name: c.ok for name, c in summary.steps.items()}, growth)
"""


def test_a_from_and_after_step_streams_many_items_in_bounded_memory(tmp_path: Path) -> None:
    # 100,000 items wait for "describe" (it runs after "gate", which runs after all "things").
    # Measured on the 2-core machine: the peak RSS grows by 2-3 MB with the spill, by 48 MB
    # when the waiting step's input was an unbounded channel (tracemalloc peaks: 2.9 MB and
    # 48 MB).
    count = 100_000
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(count), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts, growth = result.stdout.rsplit(" ", 1)
    assert counts == str({"things": count, "gate": 1, "describe": count})
    assert int(growth) < 20 * 2**20, f"RSS grew by {int(growth) / 2**20:.1f} MB"
    # The spill file lived in the journal's directory, unnamed: nothing is left there.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.jsonl"]


FULL_DISK_SCRIPT = """
import resource, signal, sys
import anyio
from harness.engine import Engine, parse_job
from harness.throttle import BucketRegistry
from harness.transport import Reply

# A real write error: past RLIMIT_FSIZE, write() fails with EFBIG (SIGXFSZ ignored, as a shell
# would leave it for a job whose disk fills up).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
job = parse_job({"name": "full", "concurrency": 8, "steps": [
    {"name": "things", "service": "iot", "operation": "CreateThing", "items": {"count": 20000},
     "params": {"thingName": "t-{{ index }}"}},
    {"name": "gate", "service": "iot", "operation": "CreateThingGroup", "after": ["things"],
     "params": {"thingGroupName": "g"}},
    {"name": "describe", "service": "iot", "operation": "DescribeThing",
     "items": {"from": "things"}, "after": ["gate"],
     "params": {"thingName": "{{ item.thingName }}"}},
]})
registry = BucketRegistry()
for op in ("CreateThing", "CreateThingGroup", "DescribeThing"):
    registry.override("iot", op, 1e9)

class Transport:
    identity, region = "t", "us-east-1"
    async def send(self, call):
        name = call.params.get("thingName") or call.params.get("thingGroupName")
        return Reply(200, output={"thingArn": "arn:aws:iot:::thing/" + name, "pad": "x" * 200})
    async def aclose(self):
        pass

summary = anyio.run(Engine(job, Transport(), registry=registry).run)
print(summary.stopped.cause, summary.exit_code, summary.steps["describe"].ok)
print(summary.stopped.reason)
"""


def test_a_spill_that_cannot_be_written_stops_the_run_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    first, reason = result.stdout.strip().splitlines()
    assert first == "spill 1 0"  # stopped before the waiting step ran: its items stay pending
    assert reason.startswith("cannot hold the items waiting for step 'describe' in ")
    assert reason.endswith("File too large")
