"""The bulk engine: job files, a streaming DAG of steps, retries, idempotency, journals.

The engine never prints; it emits events (:mod:`harness.engine._events`) that reporters render.
"""

from __future__ import annotations

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
    StopRequested,
    Throttled,
)
from harness.engine._jobfile import Job, RetrySettings, Source, Step, load_job, parse_job
from harness.engine._journal import Journal, JournalState, read_journal
from harness.engine._limits import MAX_CONCURRENCY, Limits
from harness.engine._run import DEFAULT_MAX_CONNECTION_FAILURES, Engine, Item, derive_token
from harness.engine._template import Template, TemplateFailure

__all__ = [
    "DEFAULT_MAX_CONNECTION_FAILURES",
    "MAX_CONCURRENCY",
    "Engine",
    "Event",
    "FailedItem",
    "Item",
    "ItemFinished",
    "Job",
    "Journal",
    "JournalState",
    "Limits",
    "PreflightFinished",
    "RetrySettings",
    "RunFinished",
    "RunStarted",
    "RunSummary",
    "Sink",
    "Source",
    "Step",
    "StepCounts",
    "StepFinished",
    "StepPlan",
    "StepStarted",
    "StopCause",
    "StopRequested",
    "Stopped",
    "Template",
    "TemplateFailure",
    "Throttled",
    "derive_token",
    "load_job",
    "parse_job",
    "read_journal",
]
