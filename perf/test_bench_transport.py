"""FastTransport against AioBotocoreTransport: CPU per call and calls/s, side by side in one run.

With pytest (``.venv/bin/pytest perf/test_bench_transport.py``):

* ``test_bench_create_thing[aiobotocore|fast]``: pytest-benchmark of one CreateThing through each
  transport against a canned aiohttp server on a thread of its own;
* ``test_throughput_comparison_is_valid``: the quick throughput comparison below; it asserts that
  every call succeeded and that the ratio line is printed, never a timing.

As a script (``.venv/bin/python perf/test_bench_transport.py [--calls 3000] [--concurrency 64]
[--rounds 4]``): ``python -m harness emulator --port 0`` in a child process pinned to one CPU,
the client pinned to another (when there are two), then for each round and each transport (the
order alternates) a warm-up and ``--calls`` CreateThing calls with ``--concurrency`` in flight.
It prints calls/s and client CPU µs per call for each, and the ratio fast/aiobotocore of the
median calls/s. The client is the bottleneck (``shared/reference/baselines.md``), so the ratio is
the transports' and not the emulator's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from harness.transport import AioBotocoreTransport, Call, FastTransport

CREDENTIALS = ("AKIDEXAMPLE", "harness-bench")
TRANSPORTS: dict[str, Any] = {"aiobotocore": AioBotocoreTransport, "fast": FastTransport}


# -- pytest-benchmark: one call against a canned server ---------------------------------------


class CannedServer:
    """An aiohttp server on a thread of its own that answers every request like CreateThing."""

    body = (
        b'{"thingName":"t","thingArn":"arn:aws:iot:us-east-1:123456789012:thing/t","thingId":"i"}'
    )

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="canned-server", daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=self.body, content_type="application/json")

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    def __enter__(self) -> CannedServer:
        self._thread.start()
        assert self._ready.wait(10), "the canned server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_bench_create_thing_aiobotocore(benchmark: Any) -> None:
    _bench(benchmark, "aiobotocore")


def test_bench_create_thing_fast(benchmark: Any) -> None:
    _bench(benchmark, "fast")


def _bench(benchmark: Any, name: str) -> None:
    call = Call("iot", "CreateThing", {"thingName": "t"})
    loop = asyncio.new_event_loop()
    try:
        with CannedServer() as server:
            transport = TRANSPORTS[name](
                endpoint_url=server.url, region="us-east-1", credentials=CREDENTIALS
            )
            try:
                assert loop.run_until_complete(transport.send(call)).status == 200  # warm
                reply = benchmark(lambda: loop.run_until_complete(transport.send(call)))
            finally:
                loop.run_until_complete(transport.aclose())
        assert reply.status == 200
        assert reply.output["thingName"] == "t"
    finally:
        loop.close()


# -- throughput against the emulator in a child process ----------------------------------------


@dataclass
class Run:
    """One measured window of one transport."""

    transport: str
    calls: int
    wall_s: float
    cpu_s: float
    statuses: Counter[int]

    @property
    def rate(self) -> float:
        """Calls per second of wall time."""
        return self.calls / self.wall_s

    @property
    def cpu_us(self) -> float:
        """Client CPU microseconds per call."""
        return self.cpu_s / self.calls * 1e6


def _cpus() -> tuple[int | None, int | None]:
    """(client CPU, server CPU) when two CPUs are allowed, else no pinning."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else (None, None)


@contextlib.contextmanager
def emulator(cpu: int | None) -> Iterator[tuple[str, int]]:
    """``python -m harness emulator --port 0`` in a child process; yields (URL, pid)."""

    def pin() -> None:  # in the child, before exec: every thread it starts inherits the CPU
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", "--throttle", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=pin,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on "), proc.pid
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def _drive(transport: Any, prefix: str, calls: int, concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    next_index = iter(range(calls))

    async def worker() -> None:
        for i in next_index:
            reply = await transport.send(Call("iot", "CreateThing", {"thingName": f"{prefix}-{i}"}))
            statuses[reply.status] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def _measure(name: str, url: str, prefix: str, calls: int, concurrency: int) -> Run:
    async with TRANSPORTS[name](
        endpoint_url=url, region="us-east-1", credentials=CREDENTIALS, max_connections=concurrency
    ) as transport:
        await _drive(transport, f"{prefix}-warm", max(concurrency * 4, calls // 10), concurrency)
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        statuses = await _drive(transport, prefix, calls, concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Run(name, calls, wall, cpu, statuses)


def compare(calls: int, concurrency: int, rounds: int) -> tuple[list[Run], float]:
    """Measure both transports ``rounds`` times each (order alternating); runs and the ratio."""
    client_cpu, server_cpu = _cpus()
    before = os.sched_getaffinity(0) if client_cpu is not None else None
    runs: list[Run] = []
    try:
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        with emulator(server_cpu) as (url, pid):
            where = f"client on CPU {client_cpu}, emulator on CPU {server_cpu}"
            print(f"emulator pid {pid} on {url}; {where if client_cpu is not None else 'unpinned'}")
            for r in range(rounds):
                order = ["aiobotocore", "fast"] if r % 2 == 0 else ["fast", "aiobotocore"]
                for name in order:
                    run = asyncio.run(_measure(name, url, f"r{r}-{name}", calls, concurrency))
                    runs.append(run)
                    print(
                        f"round {r + 1} {name:>11}: {run.rate:8,.0f} calls/s, "
                        f"{run.cpu_us:6,.0f} µs client CPU/call, statuses {dict(run.statuses)}"
                    )
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    medians = {
        name: statistics.median(r.rate for r in runs if r.transport == name) for name in TRANSPORTS
    }
    cpu = {
        name: statistics.median(r.cpu_us for r in runs if r.transport == name)
        for name in TRANSPORTS
    }
    ratio = medians["fast"] / medians["aiobotocore"]
    print(
        f"CreateThing x {calls:,} at concurrency {concurrency}, median of {rounds}: "
        f"fast {medians['fast']:,.0f}/s ({cpu['fast']:,.0f} µs/call) vs aiobotocore "
        f"{medians['aiobotocore']:,.0f}/s ({cpu['aiobotocore']:,.0f} µs/call)"
    )
    verdict = "PASS" if ratio >= 1.5 else "BELOW"
    print(f"fast/aiobotocore = {ratio:.2f}x (target >= 1.5x): {verdict}")
    return runs, ratio


def test_throughput_comparison_is_valid(capsys: Any) -> None:
    runs, ratio = compare(calls=300, concurrency=16, rounds=2)
    assert {r.transport for r in runs} == set(TRANSPORTS)
    for run in runs:
        assert run.statuses == Counter({200: run.calls}), run
    assert ratio > 0
    assert "fast/aiobotocore = " in capsys.readouterr().out


def main(argv: list[str] | None = None) -> int:
    """Run the throughput comparison and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    opts = parser.parse_args(argv)
    runs, _ = compare(opts.calls, opts.concurrency, opts.rounds)
    return 0 if all(r.statuses == Counter({200: r.calls}) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
