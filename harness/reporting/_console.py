"""The console reporter: live progress per step, then a summary per operation.

On a terminal it draws a rich progress bar per step (done/total, rate, ETA, errors, throttles);
otherwise it prints a plain line per step every few seconds and when the step finishes, so that
CI logs stay readable.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from harness.engine import (
    ItemFinished,
    PreflightFinished,
    RunFinished,
    RunStarted,
    RunSummary,
    StepFinished,
    StepStarted,
    StopRequested,
    Throttled,
)

if TYPE_CHECKING:
    from harness.engine import Event

__all__ = ["ConsoleReporter", "summary_table"]

_PLAIN_INTERVAL = 5.0


@dataclass(slots=True)
class _StepState:
    total: int | None
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    throttles: int = 0
    started: float | None = None
    last_line: float = 0.0
    task: TaskID | None = None

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.skipped


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def summary_table(summary: RunSummary) -> Table:
    """The per-operation summary as a rich table."""
    table = Table(title=f"{summary.job}: {summary.elapsed:.1f} s", title_justify="left")
    for header in (
        "operation",
        "calls",
        "ok",
        "failed",
        "throttles",
        "retries",
        "calls/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
    ):
        table.add_column(header, justify="left" if header == "operation" else "right")
    for stats in summary.stats:
        lat = stats.call_latency.summary()
        table.add_row(
            stats.operation,
            str(stats.calls),
            str(stats.successes),
            str(stats.failures),
            str(stats.throttles),
            str(stats.retries),
            f"{stats.rate():.1f}",
            _ms(lat.p50),
            _ms(lat.p90),
            _ms(lat.p99),
            _ms(lat.p999),
            _ms(lat.max),
        )
    return table


class ConsoleReporter:
    """Renders engine events on a console.

    :param progress: draw live progress bars (only on a terminal; plain lines otherwise)
    """

    def __init__(self, stream: TextIO | None = None, *, progress: bool = True) -> None:
        target = stream or sys.stdout
        # Off a terminal rich assumes 80 columns; the summary table needs more.
        width = None if target.isatty() else 160
        self.console = Console(file=target, highlight=False, width=width)
        self.live = progress and self.console.is_terminal
        self._progress: Progress | None = None
        self._steps: dict[str, _StepState] = {}
        self._errors: dict[str, dict[str, int]] = {}

    def __call__(self, event: Event) -> None:
        """Consume one event."""
        if isinstance(event, ItemFinished):
            self._item(event)
        elif isinstance(event, Throttled):
            state = self._steps.get(event.step)
            if state is not None:
                state.throttles += 1
        elif isinstance(event, PreflightFinished):
            self.console.print(f"preflight: {event.checked} items rendered and validated")
        elif isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, StepStarted):
            self._steps[event.step].started = anyio.current_time()
        elif isinstance(event, StepFinished):
            self._line(event.step, final=True)
        elif isinstance(event, StopRequested):
            self._stopping(event)
        elif isinstance(event, RunFinished):
            self._finish(event.summary)

    def _stopping(self, event: StopRequested) -> None:
        if event.immediate:
            line = f"stopping now: {event.in_flight} calls in flight are cancelled (pending)"
        else:
            line = (
                f"stopping ({event.stop.reason}): no new items; "
                f"{event.in_flight} calls in flight finish"
            )
        self.console.print(line, markup=False)

    def _start(self, event: RunStarted) -> None:
        self.console.print(
            f"run {event.job} against {event.endpoint}"
            + (f", journal {event.journal}" if event.journal else "")
        )
        if event.resumed:
            self.console.print(f"resuming: {event.resumed} items already done are skipped")
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description:<16}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>8}/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("err {task.fields[failed]} thr {task.fields[throttles]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        for plan in event.steps:
            state = _StepState(plan.total)
            if self._progress is not None:
                state.task = self._progress.add_task(
                    plan.name, total=plan.total, rate="0", failed=0, throttles=0
                )
            self._steps[plan.name] = state

    def _item(self, event: ItemFinished) -> None:
        state = self._steps.get(event.step)
        if state is None:
            return
        if event.status == "ok":
            state.ok += 1
        elif event.status == "failed":
            state.failed += 1
            codes = self._errors.setdefault(event.step, {})
            codes[event.error_code or "?"] = codes.get(event.error_code or "?", 0) + 1
        else:
            state.skipped += 1
        if self._progress is not None and state.task is not None:
            elapsed = anyio.current_time() - (state.started or anyio.current_time())
            rate = f"{state.done / elapsed:.0f}" if elapsed > 0 else "0"
            self._progress.update(
                state.task,
                completed=state.done,
                rate=rate,
                failed=state.failed,
                throttles=state.throttles,
            )
        else:
            self._line(event.step)

    def _line(self, step: str, *, final: bool = False) -> None:
        state = self._steps[step]
        now = anyio.current_time()
        if self._progress is not None or (not final and now - state.last_line < _PLAIN_INTERVAL):
            return
        state.last_line = now
        elapsed = now - (state.started or now)
        rate = state.done / elapsed if elapsed > 0 else 0.0
        total = f"/{state.total}" if state.total is not None else ""
        word = "done" if final else "progress"
        self.console.print(
            f"{step}: {word} {state.done}{total} ok={state.ok} failed={state.failed} "
            f"skipped={state.skipped} throttles={state.throttles} rate={rate:.0f}/s"
        )

    def _finish(self, summary: RunSummary) -> None:
        if self._progress is not None:
            self._progress.stop()
        self.console.print(summary_table(summary))
        for step, codes in self._errors.items():
            listed = ", ".join(f"{code}={n}" for code, n in sorted(codes.items()))
            self.console.print(f"failures in {step}: {listed}")
        for failure in summary.failures[:10]:
            self.console.print(
                f"  {failure.step} {failure.key}: {failure.error_code}: "
                f"{failure.error_message[:160]}"
            )
        if summary.failures_total > 10:
            self.console.print(
                f"  ... {summary.failures_total - 10} more (see the summary file or the journal)"
            )
        stopped = summary.stopped
        if stopped is not None:
            known = [n for n in summary.pending.values() if n is not None]
            unknown = any(n is None for n in summary.pending.values())
            pending = f"{sum(known)}{'+' if unknown else ''} items" if known else "the items"
            self.console.print(
                f"run stopped: {stopped.reason}; {pending} not finished stay pending "
                f"(exit {summary.exit_code})",
                markup=False,
            )
            return
        verdict = "every item succeeded" if summary.exit_code == 0 else "some items failed"
        self.console.print(f"{verdict} (exit {summary.exit_code})")

    def print(self, *objects: Any, **options: Any) -> None:
        """Print through the reporter's console (``options`` as rich's ``Console.print``)."""
        self.console.print(*objects, **options)
