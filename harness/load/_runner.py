"""The open-model load runner: requests launched on a schedule, whatever came back.

Like wrk2, the runner sends request ``i`` at its *intended* time ``t0 + time_of(i)`` (see
:class:`~harness.load.RateProfile`), not when an earlier request has returned, and it measures
two latencies per request:

* **corrected**: response time minus *intended* send time: what a client arriving on schedule
  waits, including any time the request spent waiting to be sent;
* **raw**: response time minus *actual* send time: what a closed-loop tool reports.

Requests are sent by a fixed pool of ``connections`` (the closed-loop part). A due request waits
for a free connection, FIFO. When the service stalls, the pool is blocked: only the requests
already on the wire see the stall in their raw latency, the ones that fell due meanwhile are sent
after it and answered fast, so raw percentiles hide the stall. Their corrected latency includes
the wait, so corrected percentiles show it. (Without a pool, an open model would send every due
request at once, and those would sit in the kernel during the stall: raw latency would show it
too, and the comparison would mean nothing.)

Requests due but not finished are capped at ``max_in_flight`` (waiting plus on the wire); at the
cap the scheduler waits for one to finish, and keeps the intended times of the requests it then
launches late, so the correction still covers them. Time comes only from
``anyio.current_time()`` and ``anyio.sleep()``: tests run the runner on Trio's ``MockClock``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from harness.load._result import LoadResult, OperationResult
from harness.model import load_service
from harness.transport import Call, classify

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.load._scenario import LoadOperation, Scenario
    from harness.model import Operation
    from harness.transport import Transport

__all__ = ["LoadProgress", "LoadRunner"]

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """A snapshot of a running load, handed to the progress callback once per second."""

    elapsed: float
    scheduled: int
    sent: int
    completed: int
    errors: int
    on_wire: int
    waiting: int


class LoadRunner:
    """Runs one scenario (or one worker's share of it) over one transport.

    :param worker: this runner's number among ``workers``; it sends requests ``worker``,
        ``worker + workers``, ... of the global schedule, so that workers interleave
    :param progress: called once per second with a :class:`LoadProgress`
    :param seed: seeds the retry back-off jitter
    """

    def __init__(
        self,
        scenario: Scenario,
        transport: Transport,
        *,
        worker: int = 0,
        workers: int = 1,
        progress: Callable[[LoadProgress], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.scenario = scenario
        self.transport = transport
        self.worker = worker
        self.workers = workers
        self._progress = progress
        self._rng = random.Random(seed)
        self._models: dict[str, Operation] = {
            op.name: load_service(op.service).operation(op.operation) for op in scenario.operations
        }
        self._on_wire = 0
        self._waiting = 0
        self._last_end = 0.0

    async def run(self, start_at: float | None = None) -> LoadResult:
        """Send the schedule and return what was measured.

        :param start_at: the ``anyio.current_time()`` of the run's start (default: now); workers
            get one shared instant, so that their schedules interleave
        """
        scenario, profile = self.scenario, self.scenario.profile
        now = anyio.current_time()
        t0 = now if start_at is None else start_at
        result = LoadResult(
            scenario=scenario.name,
            profile=profile,
            connections=scenario.connections,
            max_in_flight=scenario.max_in_flight,
            late_after=scenario.late_after,
            # Wall-clock time of t0, for the HdrHistogram log's StartTime.
            started_epoch=time.time() + (t0 - now),
        )
        result.total = OperationResult("total", t0)
        result.sends.origin = t0
        for op in scenario.operations:
            result.operations[op.name] = OperationResult(op.name, t0)
        pool = anyio.CapacityLimiter(scenario.connections)
        backlog = anyio.Semaphore(scenario.max_in_flight)
        self._last_end = t0
        async with anyio.create_task_group() as outer:
            if self._progress is not None:
                outer.start_soon(self._tick, t0, result)
            async with anyio.create_task_group() as requests:
                for n in range(self.worker, profile.total, self.workers):
                    intended = t0 + profile.time_of(n)
                    delay = intended - anyio.current_time()
                    if delay > 0:
                        await anyio.sleep(delay)
                    if backlog.value == 0:
                        result.backlog_waits += 1
                    await backlog.acquire()
                    in_use = scenario.max_in_flight - backlog.value
                    result.max_backlog = max(result.max_backlog, in_use)
                    result.scheduled += 1
                    self._waiting += 1
                    requests.start_soon(self._one, n, intended, result, pool, backlog)
            outer.cancel_scope.cancel()
        result.elapsed = self._last_end - t0
        for op_result in (*result.operations.values(), result.total):
            op_result.close()
        result.sends.close()
        return result

    async def _one(
        self,
        n: int,
        intended: float,
        result: LoadResult,
        pool: anyio.CapacityLimiter,
        backlog: anyio.Semaphore,
    ) -> None:
        try:
            op = self.scenario.pick(n)
            call = Call(op.service, op.operation, op.render(n, self.worker), self.scenario.region)
            async with pool:
                self._waiting -= 1
                self._on_wire += 1
                sent = anyio.current_time()
                self._record_send(result, intended, sent)
                ok, code, attempts = await self._attempts(op, call, result)
                end = anyio.current_time()
                self._on_wire -= 1
            self._last_end = max(self._last_end, end)
            corrected, raw = end - intended, end - sent
            for target in (result.operations[op.name], result.total):
                target.stats.record_call(raw, ok=ok, attempts=attempts, error_code=code, at=sent)
                target.corrected.record(corrected)
                target.corrected_timeline.record(end, corrected, ok=ok)
                target.raw_timeline.record(end, raw, ok=ok)
        finally:
            backlog.release()

    def _record_send(self, result: LoadResult, intended: float, sent: float) -> None:
        lateness = sent - intended
        result.sent += 1
        result.lateness.record(lateness)
        result.sends.record(sent, lateness)
        if lateness > self.scenario.late_after:
            result.late_starts += 1
        if sent - result.sends.origin < self.scenario.profile.duration:
            result.sent_in_window += 1

    async def _attempts(
        self, op: LoadOperation, call: Call, result: LoadResult
    ) -> tuple[bool, str | None, int]:
        """Send ``call`` until it succeeds, fails for good, or runs out of retries."""
        model = self._models[op.name]
        attempts = 0
        while True:
            attempts += 1
            started = anyio.current_time()
            reply = await self.transport.send(call)
            latency = anyio.current_time() - started
            kind = classify(reply, model)
            code = None if reply.ok else (reply.error_code or f"HTTP{reply.status}")
            for target in (result.operations[op.name], result.total):
                target.stats.record_attempt(latency, throttled=kind == "throttled", error_code=code)
            if kind in ("ok", "error", "denied") or attempts > self.scenario.retries:
                return reply.ok, code, attempts
            # Full jitter, at least what the service asked for; the connection stays held, as a
            # closed-loop client's would.
            backoff = self._rng.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempts))
            await anyio.sleep(max(backoff, reply.retry_after or 0.0))

    async def _tick(self, t0: float, result: LoadResult) -> None:
        assert self._progress is not None
        second = 1
        while True:
            await anyio.sleep(max(0.0, t0 + second - anyio.current_time()))
            second += 1
            stats = result.total.stats
            self._progress(
                LoadProgress(
                    elapsed=anyio.current_time() - t0,
                    scheduled=result.scheduled,
                    sent=result.sent,
                    completed=stats.calls,
                    errors=stats.failures,
                    on_wire=self._on_wire,
                    waiting=self._waiting,
                )
            )
