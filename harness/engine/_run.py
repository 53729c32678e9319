"""The engine: runs a job's steps as a streaming DAG over one transport.

* Every step runs at once; a step fed by another (``items: {from: X}``) takes X's items as X
  produces them; ``after`` waits for whole steps. Memory stays flat: items stream through bounded
  channels and are never all loaded.
* One semaphore caps the calls in flight for the whole run; one token bucket per (identity,
  region, operation), shared by every task, paces each operation at its quota and adapts to
  throttling (harness.throttle).
* Retries belong here, not to botocore: full-jitter exponential backoff for throttling, 5xx,
  connection errors and answers saying an earlier attempt is still in progress, at least the
  ``Retry-After`` the service asked for. Throttles are bounded by a time budget per item, not an
  attempt count, so that a throttle storm loses no item.
* Creates are idempotent: a client token derived from (job, step, item key) is filled in for
  operations that have one, so a retry, a resume or a rerun never creates a duplicate.
* Stops are clean (:meth:`Engine.stop`): no new item is taken, the calls in flight finish, and
  what was not finished stays pending for ``--resume``. The circuit breaker (consecutive
  connection failures to an endpoint), refused credentials and a journal that cannot be written
  stop a run the same way (:mod:`harness.engine._stops`).
"""

from __future__ import annotations

import csv
import hashlib
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import sniffio

from harness.engine._events import (
    Event,
    FailedItem,
    ItemFinished,
    PreflightFinished,
    RunFinished,
    RunStarted,
    RunSummary,
    Sink,
    StepCounts,
    StepFinished,
    StepPlan,
    StepStarted,
    StopCause,
    Stopped,
    Throttled,
)
from harness.engine._sources import ItemError, read_csv, read_jsonl
from harness.engine._spill import SpillQueue, relay
from harness.engine._stops import Abandoned, EndpointHealth, StopControl
from harness.engine._template import Template, TemplateFailure
from harness.errors import JobError, JournalError, PaginationError
from harness.model import example_value, format_issues
from harness.paginate import paginate
from harness.stats import OperationStats, StatsBook
from harness.throttle import AdaptiveRate, BucketRegistry, TokenBucket, WouldBlock
from harness.transport import Call, Reply, Transport, classify, token_conflict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from harness.engine._jobfile import Job, Step
    from harness.engine._journal import Journal, JournalState

__all__ = ["DEFAULT_MAX_CONNECTION_FAILURES", "Engine", "Item", "derive_token"]

_MAX_FAILURES_KEPT = 1000
_CHANNEL_BUFFER = 1024
#: Consecutive connection failures (no HTTP answer) to one endpoint that stop a run.
DEFAULT_MAX_CONNECTION_FAILURES = 20


@dataclass(frozen=True, slots=True)
class Item:
    """One unit of work: its key (stable across runs), index and data."""

    key: str
    index: int
    data: dict[str, Any]


@dataclass(slots=True)
class _StepRuntime:
    """What every call of a step uses, looked up once."""

    bucket: TokenBucket
    controller: AdaptiveRate | None
    stats: OperationStats
    endpoint: EndpointHealth


class _Failed(Exception):
    def __init__(self, code: str, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.code, self.message, self.attempts = code, message, attempts


def _clock() -> Callable[[], float]:
    """The event loop's clock, resolved once per run.

    It is what ``anyio.current_time()`` returns (loop time on asyncio, trio's clock, mock clocks
    included), without anyio's backend lookup on every call: the engine reads the clock four
    times per item.
    """
    library = sniffio.current_async_library()
    if library == "asyncio":
        import asyncio

        return asyncio.get_running_loop().time
    if library == "trio":
        import trio

        return trio.current_time
    return anyio.current_time


def derive_token(job: str, step: str, key: str, accept: Callable[[str], bool]) -> str:
    """A client token that is the same for the same (job, step, item key), every run.

    Tries a UUID-shaped token first (what botocore generates), then hex forms, returning the first
    that ``accept`` (the member's constraints) admits.
    """
    digest = hashlib.sha256(f"{job}\0{step}\0{key}".encode()).digest()
    candidates = (str(uuid.UUID(bytes=digest[:16])), digest.hex()[:32], digest.hex())
    return next((c for c in candidates if accept(c)), candidates[0])


def _small(output: dict[str, Any] | None) -> dict[str, Any]:
    """The scalar members of an output (ids, ARNs, names, versions): what downstream steps use
    and what the journal keeps."""
    if not output:
        return {}
    return {
        k: v
        for k, v in output.items()
        if isinstance(v, str | int | float | bool) and (not isinstance(v, str) or len(v) <= 2048)
    }


class Engine:
    """Runs one job over one transport.

    :param sink: receives every event (reporters render them)
    :param registry: the token buckets (a fresh one per run by default)
    :param journal: where item outcomes go (``None``: not journaled)
    :param resume_state: what an earlier run's journal says is done
    :param item_sink: receives the items of ``list`` steps, page by page
    :param max_connection_failures: consecutive connection failures to one endpoint that stop
        the run (the circuit breaker); 0 turns it off
    """

    def __init__(
        self,
        job: Job,
        transport: Transport,
        *,
        sink: Sink | None = None,
        registry: BucketRegistry | None = None,
        journal: Journal | None = None,
        resume_state: JournalState | None = None,
        concurrency: int | None = None,
        endpoint: str = "",
        item_sink: Callable[[str, str, list[Any]], None] | None = None,
        seed: int | None = None,
        max_connection_failures: int = DEFAULT_MAX_CONNECTION_FAILURES,
    ) -> None:
        self.job = job
        self.transport = transport
        # Not "registry or ...": an empty registry has len() 0 and would be replaced.
        self.registry = registry if registry is not None else BucketRegistry()
        self.journal = journal
        self.resume = resume_state
        self.concurrency = concurrency or job.concurrency
        self.endpoint = endpoint
        self._sink = sink or (lambda event: None)
        self._item_sink = item_sink
        self._rng = random.Random(seed)
        self.stats = StatsBook()
        self._runtimes: dict[str, _StepRuntime] = {}
        self._prevalidated: frozenset[str] = frozenset()
        self._counts = {s.name: [0, 0, 0] for s in job.steps}
        self._failures: list[FailedItem] = []
        self._failures_total = 0
        self._totals: dict[str, int | None] = {s.name: s.source.total for s in job.steps}
        self._preflight: PreflightFinished | None = None
        self._stops = StopControl(self._emit, max_connection_failures, self._in_flight)
        self._slots: anyio.Semaphore  # made by run()
        problems: list[str] = []
        self._templates: dict[str, Template] = {}
        self._keys: dict[str, Template | None] = {}
        for step in job.steps:
            try:
                self._templates[step.name] = Template(
                    step.params, f"step {step.name!r}: params", job.limits
                )
                self._keys[step.name] = (
                    Template(step.key, f"step {step.name!r}: key", job.limits) if step.key else None
                )
            except TemplateFailure as exc:
                problems.append(str(exc))
            if step.rate is not None:
                self.registry.override(step.service, step.operation.name, step.rate)
        if problems:
            raise JobError(f"job {job.name!r} has template errors", problems)

    def _emit(self, event: Event) -> None:
        self._sink(event)

    # --------------------------------------------------------------------------------- stops
    @property
    def stopped(self) -> Stopped | None:
        """Why the run was asked to stop, or None."""
        return self._stops.stopped

    def stop(
        self,
        reason: str,
        *,
        cause: StopCause = "signal",
        exit_code: int = 1,
        immediate: bool = False,
    ) -> None:
        """Ask the run to stop: take no new item, let the calls in flight finish, return the
        (partial) summary. Items waiting for their bucket or a retry are left pending.

        ``immediate`` also cancels the calls in flight (their items stay pending too). The first
        stop's reason is kept; a later call can only make it immediate. Safe to call from any
        task of the run's event loop, before or during :meth:`run`.
        """
        self._stops.request(reason, cause=cause, exit_code=exit_code, immediate=immediate)

    def _in_flight(self) -> int:
        """Calls on the wire now (0 before the run)."""
        slots: anyio.Semaphore | None = getattr(self, "_slots", None)
        return self.concurrency - slots.value if slots is not None else 0

    def _journal(self, step: str, key: str, status: str, **fields: Any) -> bool:
        """Record an outcome; a journal that cannot be written stops the run (False then)."""
        if self.journal is None:
            return True
        try:
            self.journal.record(step, key, status, **fields)
        except JournalError as exc:
            self.stop(str(exc), cause="journal")
            return False
        return True

    # ------------------------------------------------------------------------------- items
    def _context(self, step: Step, item: Item) -> dict[str, Any]:
        return {
            "index": item.index,
            "key": item.key,
            "item": item.data,
            "job": self.job.name,
            "step": step.name,
        }

    def _make_item(self, step: Step, index: int, data: dict[str, Any], default_key: str) -> Item:
        template = self._keys[step.name]
        if template is None:
            return Item(default_key, index, data)
        key = template.render(
            {"index": index, "item": data, "job": self.job.name, "step": step.name}
        )
        return Item(str(key), index, data)

    def _iter_static(self, step: Step) -> Iterator[Item]:
        """The items of a static source, as a plain (synchronous) generator."""
        source = step.source
        if source.kind == "once":
            yield self._make_item(step, 0, {}, "0")
        elif source.kind in ("count", "range"):
            for i in range(source.start, source.stop, source.step):
                yield self._make_item(step, i, {"index": i}, str(i))
        elif source.kind == "values":
            for i, value in enumerate(source.values):
                yield self._make_item(step, i, dict(value), str(i))
        elif source.kind in ("csv", "jsonl") and source.path is not None:
            read = read_csv if source.kind == "csv" else read_jsonl
            try:
                for i, row in enumerate(read(source.path, self.job.limits)):
                    yield self._make_item(step, i, {**row, "index": i}, str(i))
            except ItemError as exc:
                raise _Failed("BadItem", str(exc)) from None

    def _static_items(self, step: Step) -> AsyncIterator[Item]:
        """The items of a static source, yielding to the event loop now and then."""

        async def generate() -> AsyncIterator[Item]:
            for n, item in enumerate(self._iter_static(step)):
                yield item
                if n % 512 == 511:
                    await anyio.lowlevel.checkpoint()

        return generate()

    def _render(self, step: Step, item: Item) -> dict[str, Any]:
        try:
            params = self._templates[step.name].render(self._context(step, item))
        except TemplateFailure as exc:
            raise _Failed("TemplateError", str(exc)) from None
        if not isinstance(params, dict):
            raise _Failed("TemplateError", f"step {step.name!r}: params must render to a mapping")
        op = step.operation
        if op.idempotency_members and op.input is not None:
            member = op.idempotency_members[0]
            if params.get(member) is None:
                shape = op.input.members[member].shape
                validator = op.service.validator
                params[member] = derive_token(
                    self.job.name,
                    step.name,
                    item.key,
                    lambda t: not validator.validate_shape(shape, t),
                )
        # Items of static sources were all validated at preflight, and render the same again.
        issues = [] if step.name in self._prevalidated else op.validate(params)
        if issues:
            raise _Failed("InvalidItem", format_issues(issues))
        return params

    # ---------------------------------------------------------------------------- preflight
    async def preflight(self, *, max_items: int | None = None) -> PreflightFinished:
        """Render and validate every item of every step with a static source; for steps fed by
        another step, render the template once with a representative upstream item.

        :param max_items: refuse to render more items than this, all steps together (a dry
            run: ``Limits.dry_run_items``); sources of known size are counted up front
        :raises JobError: listing every invalid item (step, key, reason), or naming the limit;
            nothing was sent
        """
        if max_items is not None:
            self._check_item_count(max_items)
        problems: list[str] = []
        checked = 0
        self._first: dict[str, Item] = {}
        feeding = {s.source.upstream for s in self.job.steps if s.source.upstream}
        for step in self.job.steps:
            if step.source.kind == "from":
                continue
            # What the journal holds as done is not sent again: it needs no second check (a
            # listing that feeds other steps runs again, so it is checked).
            done = None
            if self.resume is not None and not (step.kind == "list" and step.name in feeding):
                done = self.resume.done.get(step.name)
            # Only a key template can repeat a key (the default keys are the row numbers): keep
            # no set of every key otherwise, so that memory stays flat for millions of items.
            seen: set[str] | None = set() if self._keys.get(step.name) is not None else None
            count = 0
            try:
                async for item in self._static_items(step):
                    if not count:
                        self._first[step.name] = item
                    count += 1
                    if max_items is not None and checked + count > max_items:
                        raise JobError(
                            self._too_many(
                                max_items,
                                f"step {step.name!r} brings it past {max_items:,} items",
                            )
                        )
                    if seen is not None:
                        if item.key in seen:
                            problems.append(
                                f"step {step.name!r} item {item.key!r}: duplicate item key"
                            )
                        seen.add(item.key)
                    if done is not None and item.key in done:
                        continue
                    try:
                        self._render(step, item)
                    except _Failed as exc:
                        problems.append(f"step {step.name!r} item {item.key!r}: {exc.message}")
            except (_Failed, TemplateFailure, OSError, UnicodeDecodeError, csv.Error) as exc:
                problems.append(f"step {step.name!r}: cannot read items: {exc}")
            checked += count
            self._totals[step.name] = count
        # Streamed steps last: their check renders a representative upstream item, built from
        # the upstream's first real item.
        for step in self.job.steps:
            if step.source.kind == "from":
                problems.extend(self._check_streamed(step))
        for step in self.job.steps:
            if step.source.kind == "from" and step.kind == "call":
                upstream = self.job.step(step.source.upstream or "")
                self._totals[step.name] = (
                    self._totals.get(upstream.name) if upstream.kind == "call" else None
                )
        result = PreflightFinished(checked, tuple(problems))
        self._emit(result)
        if problems:
            raise JobError(
                f"preflight found {len(problems)} problem(s); nothing was sent", problems
            )
        self._preflight = result
        return result

    def _check_item_count(self, max_items: int) -> None:
        known = {s.name: s.source.total for s in self.job.steps if s.source.kind != "from"}
        total = sum(n or 0 for n in known.values())
        if total > max_items:
            big = max(known, key=lambda name: known[name] or 0)
            raise JobError(
                self._too_many(
                    max_items, f"the job has {total:,} items (step {big!r}: {known[big]:,})"
                )
            )

    def _too_many(self, max_items: int, what: str) -> str:
        limits = self.job.limits
        limit = (
            limits.exceeded("dry_run_items")
            if max_items == limits.dry_run_items
            else f"the limit of {max_items:,} items"
        )
        return f"a dry run renders every item: {what}, above {limit}"

    def _example_item(self, step: Step, depth: int = 0) -> dict[str, Any]:
        """A representative item produced by ``step`` (for checking downstream templates)."""
        first = getattr(self, "_first", {}).get(step.name)
        data: dict[str, Any] = dict(first.data) if first is not None else {"index": 0}
        if step.source.kind == "from" and depth < 8:
            data.update(self._example_item(self.job.step(step.source.upstream or ""), depth + 1))
        try:
            params = self._templates[step.name].render(self._context(step, Item("0", 0, data)))
        except TemplateFailure:
            params = {}
        output = example_value(step.operation.output) if step.operation.output else {}
        if step.kind == "list":
            element = output.get(step.operation.paginator.result_key[0], [None])  # type: ignore[union-attr]
            first = element[0] if isinstance(element, list) and element else {}
            return first if isinstance(first, dict) else {"value": first}
        return {**data, **(params if isinstance(params, dict) else {}), **_small(output)}

    def _check_streamed(self, step: Step) -> list[str]:
        upstream = self.job.step(step.source.upstream or "")
        item = Item("0", 0, self._example_item(upstream))
        try:
            self._templates[step.name].render(self._context(step, item))
            self._make_item(step, item.index, item.data, item.key)
        except TemplateFailure as exc:
            return [f"step {step.name!r} (items from {upstream.name!r}): {exc}"]
        return []

    # ---------------------------------------------------------------------------------- run
    async def run(self) -> RunSummary:
        """Preflight (unless :meth:`preflight` already passed), then run every step; returns the
        summary (also sent as RunFinished).

        :raises JobError: when the preflight finds invalid items (nothing is sent then)
        """
        if self._preflight is None:
            await self.preflight()
        self._now = _clock()
        self._prevalidated = frozenset(
            s.name for s in self.job.steps if s.source.kind != "from" and self._preflight
        )
        started = self._now()
        resumed = self.resume.total_done if self.resume else 0
        self._emit(
            RunStarted(
                job=self.job.name,
                endpoint=self.endpoint,
                steps=tuple(
                    StepPlan(s.name, s.operation_key, s.kind, self._totals.get(s.name), s.upstream)
                    for s in self.job.steps
                ),
                journal=str(self.journal.path) if self.journal else None,
                resumed=resumed,
            )
        )
        # fast_acquire: a free slot is taken without a trip through the event loop; otherwise
        # anyio yields on every acquire and only a handful of calls end up in flight.
        self._slots = anyio.Semaphore(self.concurrency, fast_acquire=True)
        self._finished = {s.name: anyio.Event() for s in self.job.steps}
        self._outputs: dict[str, list[MemoryObjectSendStream[Item]]] = {
            s.name: [] for s in self.job.steps
        }
        inputs: dict[str, MemoryObjectReceiveStream[Item]] = {}
        relays: list[tuple[Step, MemoryObjectReceiveStream[Item], MemoryObjectSendStream[Item]]]
        relays = []
        for step in self.job.steps:
            if step.source.kind == "from":
                send, receive = anyio.create_memory_object_stream[Item](_CHANNEL_BUFFER)
                inputs[step.name] = receive
                if step.after:
                    # A step that also waits on ``after`` cannot drain its input yet, and must
                    # not block its upstream, which may feed the very step it waits for (A -> B
                    # after C, C from A): a relay holds its items meanwhile, spilling to disk
                    # beyond the channel's size (harness.engine._spill).
                    upstream_send, taken = anyio.create_memory_object_stream[Item](_CHANNEL_BUFFER)
                    relays.append((step, taken, send))
                    send = upstream_send
                self._outputs[step.source.upstream or ""].append(send)
        spill_dir = self.journal.path.parent if self.journal is not None else None
        with anyio.CancelScope() as self._stops.scope:
            async with anyio.create_task_group() as tg:
                for step, taken, relayed in relays:
                    ready = [self._finished[name] for name in step.after]
                    queue = SpillQueue(_CHANNEL_BUFFER, spill_dir)
                    tg.start_soon(self._relay, step, taken, relayed, ready, queue)
                for step in self.job.steps:
                    tg.start_soon(self._run_step, step, inputs.get(step.name))
        self._stops.scope = None
        summary = RunSummary(
            job=self.job.name,
            endpoint=self.endpoint,
            elapsed=self._now() - started,
            steps={name: StepCounts(*c) for name, c in self._counts.items()},
            stats=self.stats,
            failures=tuple(self._failures),
            failures_total=self._failures_total,
            rates=self.registry.snapshot(),
            stopped=self._stops.stopped,
            pending={
                name: None if (total := self._totals.get(name)) is None else total - sum(c)
                for name, c in self._counts.items()
            },
        )
        self._emit(RunFinished(summary))
        return summary

    async def _relay(
        self,
        step: Step,
        receive: MemoryObjectReceiveStream[Item],
        send: MemoryObjectSendStream[Item],
        ready: list[anyio.Event],
        queue: SpillQueue,
    ) -> None:
        """:func:`relay`, stopping the run when the items it holds cannot be written (a full
        disk): they were produced by upstream items the journal holds as done, whose outputs it
        keeps, so ``--resume`` hands them to the step again."""

        def failed(exc: OSError) -> None:
            where = queue.directory or "the temporary directory"
            self.stop(
                f"cannot hold the items waiting for step {step.name!r} in {where}: "
                f"{exc.strerror or exc}",
                cause="spill",
                immediate=True,
            )

        try:
            await relay(receive, send, ready, queue, failed)
        except* OSError:
            pass  # the run stops (failed() above); the upstream items stay journaled done
        except* anyio.BrokenResourceError:
            # The waiting step's workers returned: the run is stopping. What the relay still
            # held comes from upstream items journaled done; --resume hands it on again.
            if self._stops.stopped is None:
                raise

    async def _run_step(self, step: Step, receive: MemoryObjectReceiveStream[Item] | None) -> None:
        for name in step.after:
            await self._finished[name].wait()
        self._emit(StepStarted(step.name))
        # Long-lived workers, one per item in progress (bounded, so memory stays flat), instead
        # of a task per item. The run's call slots (self._slots) are taken only around each
        # send: an item waiting for its bucket, sleeping before a retry or blocked handing its
        # output downstream holds none, so a slow operation cannot starve a fast one.
        try:
            async with anyio.create_task_group() as tg:
                if receive is None:
                    # Workers share one plain generator: next() never runs in two workers at
                    # once (one thread, no await inside), and it costs far less than a channel.
                    items = self._iter_static(step)
                    for _ in range(self.concurrency):
                        tg.start_soon(self._static_worker, step, items)
                else:
                    for _ in range(self.concurrency):
                        tg.start_soon(self._worker, step, receive.clone())
                    await receive.aclose()
        finally:
            for out in self._outputs[step.name]:
                await out.aclose()
            self._finished[step.name].set()
        ok, failed, skipped = self._counts[step.name]
        self._emit(StepFinished(step.name, StepCounts(ok, failed, skipped)))

    async def _static_worker(self, step: Step, items: Iterator[Item]) -> None:
        for n, item in enumerate(items):
            if self._stops.stopped is not None:
                return
            await self._item(step, item)
            if n % 256 == 255:
                # Skipped items (resume) finish without awaiting: let the other steps run.
                await anyio.lowlevel.checkpoint()

    async def _worker(self, step: Step, receive: MemoryObjectReceiveStream[Item]) -> None:
        async with receive:
            async for item in receive:
                if self._stops.stopped is not None:
                    return
                await self._item(step, item)

    async def _forward(self, step: Step, item: Item) -> None:
        for send in self._outputs[step.name]:
            try:
                await send.send(item)
            except anyio.BrokenResourceError:
                # Every worker downstream returned: the run is stopping. The item is journaled
                # done; --resume feeds its recorded output downstream again.
                if self._stops.stopped is None:
                    raise

    async def _item(self, step: Step, item: Item) -> None:
        if step.source.kind == "from" and self._keys[step.name] is not None:
            # A streamed item keeps its upstream key unless the step has a key template.
            try:
                item = self._make_item(step, item.index, item.data, item.key)
            except TemplateFailure as exc:
                self._fail(step, item, "TemplateError", str(exc), 0, 0.0)
                return
        # A done listing that feeds other steps runs again on resume: its elements are not
        # journaled, and the items they feed downstream may not all be done.
        relist = step.kind == "list" and bool(self._outputs[step.name])
        if self.resume is not None and not relist and self.resume.is_done(step.name, item.key):
            self._counts[step.name][2] += 1
            self._emit(ItemFinished(step.name, item.key, "skipped"))
            if self._outputs[step.name] and step.kind == "call":
                recorded = self.resume.output(step.name, item.key) or {}
                params = self._safe_params(step, item)
                await self._forward(
                    step, Item(item.key, item.index, {**item.data, **params, **recorded})
                )
            return
        now = self._now
        started = now()
        try:
            params = self._render(step, item)
            if step.kind == "call":
                reply, attempts = await self._call(step, params)
                output = _small(reply.output)
                forward = [Item(item.key, item.index, {**item.data, **params, **output})]
            else:
                count, attempts, forward = await self._list(step, item, params)
                output = {"items": count}
        except _Failed as exc:
            self._fail(step, item, exc.code, exc.message, exc.attempts, now() - started)
            return
        except Abandoned:
            return
        latency = now() - started
        if not self._journal(
            step.name, item.key, "ok", attempts=attempts, latency=latency, output=output
        ):
            return
        self._counts[step.name][0] += 1
        self._emit(ItemFinished(step.name, item.key, "ok", attempts, latency))
        if self._outputs[step.name]:
            for produced in forward:
                await self._forward(step, produced)

    def _safe_params(self, step: Step, item: Item) -> dict[str, Any]:
        try:
            params = self._templates[step.name].render(self._context(step, item))
        except TemplateFailure:
            return {}
        return params if isinstance(params, dict) else {}

    def _fail(
        self, step: Step, item: Item, code: str, message: str, attempts: int, latency: float
    ) -> None:
        if not self._journal(
            step.name,
            item.key,
            "failed",
            attempts=attempts,
            latency=latency,
            error_code=code,
            error_message=message,
        ):
            return
        self._counts[step.name][1] += 1
        self._failures_total += 1
        if len(self._failures) < _MAX_FAILURES_KEPT:
            self._failures.append(FailedItem(step.name, item.key, code, message, attempts))
        self._emit(ItemFinished(step.name, item.key, "failed", attempts, latency, code, message))

    async def _call(self, step: Step, params: dict[str, Any]) -> tuple[Reply, int]:
        """One logical call with the engine's retries; raises _Failed when it does not succeed.

        What bounds the retries depends on the answer: throttles are retried until
        ``throttle_budget`` seconds have passed since the first attempt (a throttle storm must
        not lose items), answers saying an earlier attempt is still in progress until
        ``in_progress_budget`` seconds after the first of them, transient errors (5xx, no
        answer) ``max_attempts`` times. Anything else fails the item at once.
        """
        op = step.operation
        runtime = self._runtimes.get(step.name)
        if runtime is None:
            region = step.region or self.transport.region
            key = (self.transport.identity, region, step.service, op.name)
            runtime = self._runtimes[step.name] = _StepRuntime(
                self.registry.bucket(*key),
                self.registry.controller(*key),
                self.stats.stats(step.operation_key),
                self._stops.endpoint(step.service, region),
            )
        bucket, controller, stats = runtime.bucket, runtime.controller, runtime.stats
        retries = self.job.retries
        call = Call(step.service, op.name, params, step.region)
        attempts = transient = 0
        first: float | None = None
        # Set once an attempt may have reached the server without our hearing its answer (no
        # answer, a 5xx): a retry's conflict on the same client token is then that attempt.
        unsure = False
        waiting_since: float | None = None  # the first in-progress answer
        while True:
            try:
                bucket.acquire_nowait()  # the common case at a generous rate: no await
            except WouldBlock:
                await self._stops.wait(bucket.acquire)
            async with self._slots:
                if self._stops.stopped is not None:
                    raise Abandoned  # stopping: nothing more is sent
                t0 = self._now()
                first = t0 if first is None else first
                reply = await self.transport.send(call)
                t1 = self._now()
            attempts += 1
            kind = classify(reply, op)
            if kind == "error" and unsure and token_conflict(reply, op):
                kind = "in_progress"
            self._stops.watch(runtime.endpoint, reply, kind)
            stats.record_attempt(
                t1 - t0, throttled=kind == "throttled", error_code=reply.error_code
            )
            if kind == "ok":
                if controller is not None:
                    controller.on_success(t0)
                stats.record_call(t1 - first, ok=True, attempts=attempts, at=t1)
                return reply, attempts
            if kind == "throttled":
                if controller is not None:
                    controller.on_throttle(t0)
                    self._emit(Throttled(step.name, step.operation_key, controller.rate))
                if reply.retry_after:
                    # The service said when it will take requests again: from anyone, so the
                    # whole bucket waits, not only this item.
                    bucket.hold(t1 + reply.retry_after)
                give_up = t1 - first >= retries.throttle_budget
            elif kind == "in_progress":
                waiting_since = t1 if waiting_since is None else waiting_since
                give_up = t1 - waiting_since >= retries.in_progress_budget
            elif kind == "transient":
                unsure = True
                transient += 1
                give_up = transient >= retries.max_attempts
            else:
                give_up = True
            if give_up:
                code = reply.error_code or f"HTTP{reply.status}"
                stats.record_call(t1 - first, ok=False, attempts=attempts, error_code=code, at=t1)
                raise _Failed(code, reply.error_message or f"HTTP status {reply.status}", attempts)
            delay = self._rng.uniform(
                0, min(retries.max_delay, retries.base_delay * 2 ** min(attempts - 1, 32))
            )
            if reply.retry_after:
                # At least what the service asked for, even beyond max_delay: retrying sooner
                # only earns another throttle.
                delay = max(delay, reply.retry_after)
            await self._stops.wait(anyio.sleep, delay)

    async def _list(
        self, step: Step, item: Item, params: dict[str, Any]
    ) -> tuple[int, int, list[Item]]:
        attempts = 0

        async def fetch(request: dict[str, Any]) -> dict[str, Any]:
            nonlocal attempts
            try:
                reply, used = await self._call(step, request)
            except _Failed as exc:
                exc.attempts += attempts
                raise
            attempts += used
            return reply.output or {}

        count = 0
        forward: list[Item] = []
        try:
            async for page in paginate(step.operation, params, fetch):
                if self._item_sink is not None:
                    self._item_sink(step.name, item.key, page.items)
                if self._outputs[step.name]:
                    # Keys number the listed elements in order (stable across runs, for resume).
                    for n, element in enumerate(page.items, count):
                        data = element if isinstance(element, dict) else {"value": element}
                        forward.append(Item(f"{item.key}/{n}", item.index, data))
                count += len(page.items)
        except PaginationError as exc:
            raise _Failed("PaginationError", exc.reason, attempts) from None
        if step.expect_items is not None and count != step.expect_items:
            raise _Failed(
                "UnexpectedItemCount",
                f"expected {step.expect_items} items, listed {count}",
                attempts,
            )
        return count, attempts, forward
