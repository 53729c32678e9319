"""The engine: runs a job's steps as a streaming DAG over one transport.

* Every step runs at once; a step fed by another (``items: {from: X}``) takes X's items as X
  produces them; ``after`` waits for whole steps. Memory stays flat: items stream through bounded
  channels and are never all loaded.
* One semaphore caps the calls in flight for the whole run; one token bucket per (identity,
  region, operation), shared by every task, paces each operation at its quota and adapts to
  throttling (harness.throttle).
* Retries belong here, not to botocore: full-jitter exponential backoff for throttling, 5xx and
  connection errors, at least the ``Retry-After`` the service asked for.
* Creates are idempotent: a client token derived from (job, step, item key) is filled in for
  operations that have one, so a retry, a resume or a rerun never creates a duplicate.
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
    Throttled,
)
from harness.engine._sources import ItemError, read_csv, read_jsonl
from harness.engine._spill import SpillQueue, relay
from harness.engine._template import Template, TemplateFailure
from harness.errors import JobError, PaginationError
from harness.model import example_value, format_issues
from harness.paginate import paginate
from harness.stats import OperationStats, StatsBook
from harness.throttle import AdaptiveRate, BucketRegistry, TokenBucket, WouldBlock
from harness.transport import Call, Reply, Transport, classify

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from harness.engine._jobfile import Job, Step
    from harness.engine._journal import Journal, JournalState

__all__ = ["Engine", "Item", "derive_token"]

_MAX_FAILURES_KEPT = 1000
_CHANNEL_BUFFER = 1024


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
        for step in self.job.steps:
            if step.source.kind == "from":
                continue
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
        async with anyio.create_task_group() as tg:
            for step, taken, relayed in relays:
                ready = [self._finished[name] for name in step.after]
                queue = SpillQueue(_CHANNEL_BUFFER, spill_dir)
                tg.start_soon(relay, taken, relayed, ready, queue)
            for step in self.job.steps:
                tg.start_soon(self._run_step, step, inputs.get(step.name))
        summary = RunSummary(
            job=self.job.name,
            endpoint=self.endpoint,
            elapsed=self._now() - started,
            steps={name: StepCounts(*c) for name, c in self._counts.items()},
            stats=self.stats,
            failures=tuple(self._failures),
            failures_total=self._failures_total,
            rates=self.registry.snapshot(),
        )
        self._emit(RunFinished(summary))
        return summary

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
            await self._item(step, item)
            if n % 256 == 255:
                # Skipped items (resume) finish without awaiting: let the other steps run.
                await anyio.lowlevel.checkpoint()

    async def _worker(self, step: Step, receive: MemoryObjectReceiveStream[Item]) -> None:
        async with receive:
            async for item in receive:
                await self._item(step, item)

    async def _forward(self, step: Step, item: Item) -> None:
        for send in self._outputs[step.name]:
            await send.send(item)

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
        latency = now() - started
        self._counts[step.name][0] += 1
        if self.journal is not None:
            self.journal.record(
                step.name, item.key, "ok", attempts=attempts, latency=latency, output=output
            )
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
        self._counts[step.name][1] += 1
        self._failures_total += 1
        if len(self._failures) < _MAX_FAILURES_KEPT:
            self._failures.append(FailedItem(step.name, item.key, code, message, attempts))
        if self.journal is not None:
            self.journal.record(
                step.name,
                item.key,
                "failed",
                attempts=attempts,
                latency=latency,
                error_code=code,
                error_message=message,
            )
        self._emit(ItemFinished(step.name, item.key, "failed", attempts, latency, code, message))

    async def _call(self, step: Step, params: dict[str, Any]) -> tuple[Reply, int]:
        """One logical call with the engine's retries; raises _Failed when it does not succeed."""
        op = step.operation
        runtime = self._runtimes.get(step.name)
        if runtime is None:
            region = step.region or self.transport.region
            key = (self.transport.identity, region, step.service, op.name)
            runtime = self._runtimes[step.name] = _StepRuntime(
                self.registry.bucket(*key),
                self.registry.controller(*key),
                self.stats.stats(step.operation_key),
            )
        bucket, controller, stats = runtime.bucket, runtime.controller, runtime.stats
        retries = self.job.retries
        call = Call(step.service, op.name, params, step.region)
        attempts = 0
        first: float | None = None
        while True:
            try:
                bucket.acquire_nowait()  # the common case at a generous rate: no await
            except WouldBlock:
                await bucket.acquire()
            async with self._slots:
                t0 = self._now()
                first = t0 if first is None else first
                reply = await self.transport.send(call)
                t1 = self._now()
            attempts += 1
            kind = classify(reply, op)
            stats.record_attempt(
                t1 - t0, throttled=kind == "throttled", error_code=reply.error_code
            )
            if kind == "ok":
                if controller is not None:
                    controller.on_success()
                stats.record_call(t1 - first, ok=True, attempts=attempts, at=t1)
                return reply, attempts
            if kind == "throttled" and controller is not None:
                controller.on_throttle()
                self._emit(Throttled(step.name, step.operation_key, controller.rate))
            if kind == "error" or attempts >= retries.max_attempts:
                code = reply.error_code or f"HTTP{reply.status}"
                stats.record_call(t1 - first, ok=False, attempts=attempts, error_code=code, at=t1)
                raise _Failed(code, reply.error_message or f"HTTP status {reply.status}", attempts)
            delay = self._rng.uniform(
                0, min(retries.max_delay, retries.base_delay * 2 ** (attempts - 1))
            )
            if reply.retry_after:
                # At least what the service asked for, even beyond max_delay: retrying sooner
                # only earns another throttle.
                delay = max(delay, reply.retry_after)
            await anyio.sleep(delay)

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
