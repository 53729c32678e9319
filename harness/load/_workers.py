"""Running a load: in this process, or in N worker processes whose results are merged.

One asyncio loop with aiobotocore costs the client hundreds of microseconds of CPU per call, so
one process tops out at a few thousand calls per second. ``workers=N`` spawns N processes, each
with its own loop, transport and connection pool, sending every N-th request of the one global
schedule from one shared start instant: their arrivals interleave as a single sender's would.
Each returns its :class:`~harness.load.LoadResult` (histograms travel in their compressed wire
form), and the parent merges them.

Real runs use plain asyncio: aiobotocore needs it, and uvloop's clock moves in whole
milliseconds per loop iteration, too coarse for the latencies measured here.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from harness.errors import HarnessError
from harness.load._runner import LoadProgress, LoadRunner
from harness.transport import AioBotocoreTransport, FastTransport

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

    from harness.load._result import LoadResult
    from harness.load._scenario import Scenario

__all__ = ["TransportOptions", "run_load"]

# Workers import aiobotocore and build their clients first; once all say they are ready, the
# parent gives them a start instant this far ahead (enough to read it from the pipe).
_START_MARGIN = 0.25
_READY_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How to reach the target; picklable, so that workers can build their own transport.

    :param endpoint_url: an emulator or other endpoint; ``None`` for AWS
    :param credentials: ``(access key, secret key)``, or ``None`` for the default chain
    :param kind: ``"aiobotocore"`` (the SDK) or ``"fast"`` (:class:`~harness.transport.
        FastTransport`: the same requests at a fraction of the client CPU per call)
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    credentials: tuple[str, str] | None = None
    kind: str = "aiobotocore"

    def build(self, connections: int) -> AioBotocoreTransport | FastTransport:
        """A transport of :attr:`kind` whose pool holds ``connections`` connections."""
        cls = FastTransport if self.kind == "fast" else AioBotocoreTransport
        return cls(
            endpoint_url=self.endpoint_url,
            region=self.region,
            profile=self.profile,
            credentials=self.credentials,
            max_connections=connections,
        )


async def _prepare(transport: AioBotocoreTransport | FastTransport, scenario: Scenario) -> None:
    # Creating a client loads its service model (tens of milliseconds): done lazily by the
    # first call, it would make the first requests late. The transport has no public hook for
    # it, so we build each client ahead, when the transport offers its lookup.
    client = getattr(transport, "_client", None)
    if client is None:
        return
    region = scenario.region or transport.region
    for service in sorted({op.service for op in scenario.operations}):
        await client(service, region)


async def _run_one(
    scenario: Scenario,
    options: TransportOptions,
    worker: int,
    workers: int,
    conn: Connection | None,
    progress: Callable[[LoadProgress], None] | None,
) -> LoadResult:
    async with options.build(scenario.connections) as transport:
        await _prepare(transport, scenario)
        start_at = None
        if conn is not None:
            conn.send(("ready", None))
            start_monotonic: float = await anyio.to_thread.run_sync(conn.recv)
            # The shared start is in time.monotonic(); our loop's clock may count from
            # elsewhere, so we carry the offset over rather than the value.
            start_at = anyio.current_time() + (start_monotonic - time.monotonic())
        runner = LoadRunner(scenario, transport, worker=worker, workers=workers, progress=progress)
        return await runner.run(start_at)


def _child(
    conn: Connection, scenario: Scenario, options: TransportOptions, worker: int, workers: int
) -> None:
    try:
        result = anyio.run(
            _run_one, scenario, options, worker, workers, conn, None, backend="asyncio"
        )
        conn.send(("done", result))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_load(
    scenario: Scenario,
    options: TransportOptions,
    *,
    workers: int = 1,
    progress: Callable[[LoadProgress], None] | None = None,
) -> LoadResult:
    """Run ``scenario`` against the target and return the (merged) result.

    :param workers: processes to spread the schedule over (1: this process)
    :param progress: called once per second (only with one worker)
    :raises HarnessError: when a worker fails or does not start
    """
    if workers <= 1:
        return anyio.run(_run_one, scenario, options, 0, 1, None, progress, backend="asyncio")
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes: list[Any] = []
    try:
        for worker in range(workers):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_child,
                args=(theirs, scenario, options, worker, workers),
                name=f"harness-load-{worker}",
                daemon=True,
            )
            process.start()
            theirs.close()
            pipes.append(ours)
            processes.append(process)
        for worker, pipe in enumerate(pipes):
            _expect(pipe, "ready", worker, _READY_TIMEOUT)
        start = time.monotonic() + _START_MARGIN
        for pipe in pipes:
            pipe.send(start)
        results = [_expect(pipe, "done", worker, None) for worker, pipe in enumerate(pipes)]
        for process in processes:
            process.join(timeout=30)
    finally:
        for pipe in pipes:
            pipe.close()
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            process.close()
    merged: LoadResult = results[0]
    for other in results[1:]:
        merged.merge(other)
    return merged


def _expect(pipe: Connection, kind: str, worker: int, timeout: float | None) -> Any:
    if timeout is not None and not pipe.poll(timeout):
        raise HarnessError(f"load worker {worker} did not start within {timeout:g} s")
    try:
        got, value = pipe.recv()
    except EOFError:
        raise HarnessError(f"load worker {worker} exited without a result") from None
    if got == "error":
        raise HarnessError(f"load worker {worker} failed:\n{value}")
    if got != kind:
        raise HarnessError(f"load worker {worker}: expected {kind!r}, got {got!r}")
    return value
