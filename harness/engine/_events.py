"""What the engine tells the world. The engine never prints: reporters consume these events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.stats import StatsBook

__all__ = [
    "Event",
    "FailedItem",
    "ItemFinished",
    "PreflightFinished",
    "RunFinished",
    "RunStarted",
    "RunSummary",
    "Sink",
    "StepCounts",
    "StepFinished",
    "StepPlan",
    "StepStarted",
    "StopCause",
    "StopRequested",
    "Stopped",
    "Throttled",
]

ItemStatus = Literal["ok", "failed", "skipped"]
#: Why a run stopped early: a signal (or any caller of ``Engine.stop``), the circuit breaker
#: (consecutive connection failures), refused credentials, a journal that cannot be written, or
#: items waiting for an ``after`` step that cannot be held on disk.
StopCause = Literal["signal", "breaker", "denied", "journal", "spill"]


@dataclass(frozen=True, slots=True)
class Stopped:
    """Why a run stopped before every item was done.

    The items not finished were not failed: they stay pending, and ``--resume`` runs them.

    :param cause: what stopped it
    :param reason: one line for people (``"SIGINT received"``, ``"20 consecutive connection
        failures to iot in us-east-1 (last: EndpointConnectionError: ...)"``)
    :param exit_code: the exit status the command should end with (1; 130 and 143 for signals)
    """

    cause: StopCause
    reason: str
    exit_code: int = 1

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"cause": self.cause, "reason": self.reason, "exit_code": self.exit_code}


@dataclass(frozen=True, slots=True)
class StopRequested:
    """The run takes no new item; the calls in flight finish (``immediate``: are cancelled).

    ``in_flight`` counts the calls on the wire when the stop was asked for.
    """

    stop: Stopped
    in_flight: int
    immediate: bool = False


@dataclass(frozen=True, slots=True)
class StepPlan:
    """A step as announced at the start: its operation and, when known, how many items."""

    name: str
    operation: str
    kind: str
    total: int | None
    upstream: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run begins (after a successful preflight)."""

    job: str
    endpoint: str
    steps: tuple[StepPlan, ...]
    journal: str | None
    resumed: int  #: items already done in the journal, skipped this time


@dataclass(frozen=True, slots=True)
class PreflightFinished:
    """Every item was rendered and validated; ``problems`` lists the invalid ones."""

    checked: int
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A step starts taking items (its ``after`` steps are done)."""

    step: str


@dataclass(frozen=True, slots=True)
class ItemFinished:
    """One item is done: ``ok``, ``failed`` (after retries, or not retryable) or ``skipped``
    (already done according to the journal)."""

    step: str
    key: str
    status: ItemStatus
    attempts: int = 0
    latency: float = 0.0
    error_code: str | None = None
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class Throttled:
    """An attempt was throttled; the operation's rate is now ``rate`` TPS."""

    step: str
    operation: str
    rate: float


@dataclass(frozen=True, slots=True)
class StepCounts:
    """Items per outcome for one step."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def done(self) -> int:
        """Items finished in any way."""
        return self.ok + self.failed + self.skipped


@dataclass(frozen=True, slots=True)
class StepFinished:
    """Every item of a step is done."""

    step: str
    counts: StepCounts


@dataclass(frozen=True, slots=True)
class FailedItem:
    """An item that did not succeed, for the summary."""

    step: str
    key: str
    error_code: str
    error_message: str
    attempts: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "step": self.step,
            "key": self.key,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The outcome of a run: counts per step, statistics per operation, failed items."""

    job: str
    endpoint: str
    elapsed: float
    steps: dict[str, StepCounts]
    stats: StatsBook = field(repr=False)
    failures: tuple[FailedItem, ...]
    failures_total: int
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    #: set when the run stopped early (signal, circuit breaker, refused credentials, journal)
    stopped: Stopped | None = None
    #: per step, the items not finished (None when the step's total is not known)
    pending: dict[str, int | None] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every item succeeded (or was already done), 1 when some failed, the stop's
        status (1, or 130/143 for signals) when the run stopped early."""
        if self.stopped is not None:
            return self.stopped.exit_code
        return 1 if any(c.failed for c in self.steps.values()) else 0

    def to_json(self) -> dict[str, Any]:
        """The ``--summary`` document."""
        return {
            "job": self.job,
            "endpoint": self.endpoint,
            "elapsed_s": round(self.elapsed, 3),
            "exit_code": self.exit_code,
            "steps": {
                name: {"ok": c.ok, "failed": c.failed, "skipped": c.skipped}
                for name, c in self.steps.items()
            },
            "operations": self.stats.to_json(),
            "rates": self.rates,
            "failures_total": self.failures_total,
            "failures": [f.to_json() for f in self.failures],
            "stopped": self.stopped.to_json() if self.stopped is not None else None,
            "pending": self.pending,
        }


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run is over."""

    summary: RunSummary


Event = (
    RunStarted
    | PreflightFinished
    | StepStarted
    | ItemFinished
    | Throttled
    | StepFinished
    | StopRequested
    | RunFinished
)
Sink = Callable[[Event], None]
