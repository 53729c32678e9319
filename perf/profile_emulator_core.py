"""CPU cost of the emulator's request pipeline alone (no HTTP), and where it goes.

    .venv/bin/python perf/profile_emulator_core.py [--calls N] [--profile] [--top K]

Calls :meth:`harness.emulator.EmulatorCore.handle` in-process for the benchmark's two operations
(the same requests ``perf/_loadgen.py`` sends) and prints µs per call. Subtracting this from the
server CPU µs per call of ``perf/emulator_vs_moto.py`` gives the share of the HTTP layer (aiohttp,
sockets). ``--profile`` adds a cProfile listing of the top functions by own time (cProfile
inflates many small calls, so read it for ranking, not for absolute µs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loadgen import OPERATIONS, build_requests

from harness.emulator import EmulatorCore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_Parsed = tuple[str, str, dict[str, str], bytes]


def parse_request(raw: bytes) -> _Parsed:
    """Method, path, headers and body of one request built by :func:`build_requests`."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return method, path, headers, body


def _no_values(name: str) -> list[str]:
    return []


async def run_calls(core: EmulatorCore, requests: list[_Parsed]) -> float:
    """Answer every request through ``core``; seconds taken. Raises on a non-2xx answer."""
    handle: Callable[..., Awaitable[tuple[int, dict[str, str], bytes]]] = core.handle
    t0 = time.perf_counter()
    for method, path, headers, body in requests:
        status, _, data = await handle(method, path, {}, _no_values, headers, body)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: {status} {data[:200]!r}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Time (and optionally profile) the pipeline for each operation."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing")
    parser.add_argument("--top", type=int, default=25, help="functions in the listing")
    args = parser.parse_args(argv)
    for operation in OPERATIONS:
        core = EmulatorCore()
        warm = [parse_request(r) for r in build_requests(operation, "127.0.0.1", 1, 0, 500)]
        calls = [
            parse_request(r) for r in build_requests(operation, "127.0.0.1", 1, 500, args.calls)
        ]
        asyncio.run(run_calls(core, warm))
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        elapsed = asyncio.run(run_calls(core, calls))
        if profiler is not None:
            profiler.disable()
        print(
            f"{operation}: {elapsed / args.calls * 1e6:,.1f} µs per call in EmulatorCore.handle"
            + (" (under cProfile)" if profiler is not None else ""),
            flush=True,
        )
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
