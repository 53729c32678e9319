"""Job files: named steps, each one operation of one service over a stream of items.

.. code-block:: yaml

    name: fleet-onboarding
    concurrency: 64                       # calls in flight at once (default 64)
    retries: {max_attempts: 8, base_delay: 0.2, max_delay: 20, throttle_budget: 900,
              in_progress_budget: 120}
    steps:
      - name: groups
        service: iot
        operation: CreateThingGroup
        items: {count: 10}                # or {range: {start, stop, step}}, {csv: F}, {jsonl: F},
                                          #    {values: [{...}, ...]}, {from: STEP}
        params:
          thingGroupName: "fleet-{{ index }}"
      - name: things
        service: iot
        operation: CreateThing
        items: {count: 10000}
        rate: 50                          # TPS for this step's operation (default: the quota)
        params:
          thingName: "device-{{ '%05d' % index }}"
          attributePayload: {attributes: {group: "fleet-{{ index % 10 }}"}}
      - name: membership
        service: iot
        operation: AddThingToThingGroup
        items: {from: things}             # streams: starts on things as they are created
        after: [groups]                   # but only once every group exists
        params:
          thingName: "{{ item.thingName }}"
          thingGroupName: "{{ item.attributePayload.attributes.group }}"
      - name: verify
        kind: list                        # pages through the operation's paginator
        service: iot
        operation: ListThingsInThingGroup
        items: {from: groups}
        after: [membership]
        expect_items: 1000                # per parameter set; otherwise the item fails
        params: {thingGroupName: "{{ item.thingGroupName }}"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml

from harness.engine._limits import (
    MAX_ATTEMPTS,
    MAX_BUDGET,
    MAX_CONCURRENCY,
    MAX_DELAY,
    MAX_RATE,
    Limits,
    check_document,
    load_yaml,
    positive,
    shown,
)
from harness.errors import InvalidArgument, JobError, ModelError
from harness.model import Operation, parse_operation_ref, split_operation_ref

__all__ = ["Job", "RetrySettings", "Source", "Step", "load_job", "parse_job"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SourceKind = Literal["count", "range", "csv", "jsonl", "values", "from", "once"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a step's items come from.

    ``count``/``range`` yield ``{"index": i}``; ``csv``/``jsonl`` yield one item per row (with
    ``index`` the row number); ``from`` yields the items another step produced; ``once`` yields a
    single empty item (a step with no ``items``).
    """

    kind: SourceKind
    start: int = 0
    stop: int = 1
    step: int = 1
    path: Path | None = None
    upstream: str | None = None
    values: tuple[dict[str, Any], ...] = ()

    @property
    def total(self) -> int | None:
        """How many items a static source yields, when known without reading it."""
        if self.kind in ("count", "range"):
            return max(0, len(range(self.start, self.stop, self.step)))
        if self.kind == "once":
            return 1
        if self.kind == "values":
            return len(self.values)
        return None


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Full-jitter exponential backoff: ``uniform(0, min(max_delay, base_delay * 2**n))``.

    :param max_attempts: attempts that end in a transient error (5xx, connection) per item
    :param throttle_budget: seconds from an item's first attempt during which throttled
        attempts are retried (throttles are bounded by time, not by a count)
    :param in_progress_budget: seconds an item keeps retrying answers that say an earlier
        attempt with its client token is still in progress
    """

    max_attempts: int = 8
    base_delay: float = 0.2
    max_delay: float = 20.0
    throttle_budget: float = 900.0
    in_progress_budget: float = 120.0


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a job: an operation applied to every item of its source."""

    name: str
    service: str
    operation: Operation = field(repr=False)
    source: Source
    params: Any
    kind: Literal["call", "list"] = "call"
    key: str | None = None
    after: tuple[str, ...] = ()
    rate: float | None = None
    region: str | None = None
    expect_items: int | None = None

    @property
    def operation_key(self) -> str:
        """``service.Operation``, the key of stats and rates."""
        return f"{self.service}.{self.operation.name}"

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every step this one waits for: its item source and ``after``."""
        ups = (self.source.upstream,) if self.source.upstream else ()
        return ups + tuple(a for a in self.after if a not in ups)


@dataclass(frozen=True, slots=True)
class Job:
    """A parsed, checked job file."""

    name: str
    steps: tuple[Step, ...]
    concurrency: int = 64
    retries: RetrySettings = RetrySettings()
    region: str | None = None
    path: Path | None = None
    limits: Limits = field(default_factory=Limits)

    def step(self, name: str) -> Step:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def downstream(self, name: str) -> list[Step]:
        """The steps whose items come from step ``name``."""
        return [s for s in self.steps if s.source.upstream == name]


def _source(raw: Any, where: str, base: Path, limits: Limits) -> Source:
    if raw is None:
        return Source("once")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise JobError(f"{where}: 'items' must be one of count, range, csv, jsonl, values, from")
    ((kind, value),) = raw.items()
    if kind == "count":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise JobError(
                f"{where}: items.count must be a non-negative integer, not {shown(value)}"
            )
        if value > limits.step_items:
            raise JobError(
                f"{where}: items.count {value:,} is above {limits.exceeded('step_items')}"
            )
        return Source("count", 0, value, 1)
    if kind == "range":
        if not isinstance(value, Mapping) or "stop" not in value:
            raise JobError(f"{where}: items.range needs at least 'stop' (and 'start', 'step')")
        try:
            start, stop, step = (
                int(value.get("start", 0)),
                int(value["stop"]),
                int(value.get("step", 1)),
            )
        except (TypeError, ValueError, OverflowError):
            raise JobError(
                f"{where}: items.range values must be integers: {shown(dict(value))}"
            ) from None
        if step == 0:
            raise JobError(f"{where}: items.range step must not be 0")
        # Not len(range(...)): it raises OverflowError beyond sys.maxsize.
        length = max(0, (stop - start + step - (1 if step > 0 else -1)) // step)
        if length > limits.step_items:
            count = f"{length:,}" if length < 10**18 else "more than 10**18"
            raise JobError(
                f"{where}: items.range has {count} items, above {limits.exceeded('step_items')}"
            )
        return Source("range", start, stop, step)
    if kind in ("csv", "jsonl"):
        path = (base / str(value)).resolve()
        if not path.is_file():
            raise JobError(f"{where}: items.{kind} file {str(value)!r} does not exist ({path})")
        return Source(kind, path=path)
    if kind == "from":
        return Source("from", upstream=str(value))
    if kind == "values":
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise JobError(f"{where}: items.values must be a list of mappings")
        return Source("values", values=tuple(dict(v) for v in value))
    raise JobError(
        f"{where}: unknown item source {kind!r}; use count, range, csv, jsonl, values or from"
    )


def _step(raw: Any, index: int, base: Path, default_region: str | None, limits: Limits) -> Step:
    if not isinstance(raw, Mapping):
        raise JobError(f"steps[{index}]: each step must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise JobError(f"steps[{index}]: 'name' must be 1-64 letters, digits, '_', '.' or '-'")
    where = f"step {name!r}"
    unknown = set(raw) - {
        "name",
        "service",
        "operation",
        "items",
        "params",
        "kind",
        "key",
        "after",
        "rate",
        "region",
        "expect_items",
    }
    if unknown:
        raise JobError(f"{where}: unknown field(s) {sorted(unknown)}")
    service, operation = raw.get("service"), raw.get("operation")
    if not isinstance(operation, str) or not isinstance(service, str | None):
        raise JobError(
            f"{where}: 'operation' is a required string, and 'service' unless the operation "
            "carries it (iot:CreateThing)"
        )
    try:
        # One syntax with --rate, -o and thresholds: 'operation' may carry the service.
        if service is None and split_operation_ref(operation)[0] is None:
            raise InvalidArgument(
                f"name the service: 'service: iot' or 'operation: iot:{operation}'"
            )
        service, op = parse_operation_ref(operation, [service] if service else None)
    except (ModelError, InvalidArgument) as exc:
        raise JobError(f"{where}: {exc}") from None
    kind = raw.get("kind", "call")
    if kind not in ("call", "list"):
        raise JobError(f"{where}: kind must be 'call' or 'list', not {kind!r}")
    if kind == "list" and op.paginator is None:
        raise JobError(f"{where}: {service}.{op.name} has no paginator; use kind: call")
    after = raw.get("after", [])
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise JobError(f"{where}: 'after' must be a list of step names")
    params = raw.get("params", {})
    if not isinstance(params, Mapping | str):
        raise JobError(f"{where}: 'params' must be a mapping (or one template rendering to one)")
    expect = raw.get("expect_items")
    if expect is not None and (kind != "list" or not isinstance(expect, int) or expect < 0):
        raise JobError(f"{where}: expect_items is a non-negative integer, for kind: list steps")
    return Step(
        name=name,
        service=service,
        operation=op,
        source=_source(raw.get("items"), where, base, limits),
        params=dict(params) if isinstance(params, Mapping) else params,
        kind=kind,
        key=str(raw["key"]) if raw.get("key") is not None else None,
        after=tuple(after),
        rate=positive(raw["rate"], f"{where}: rate", float, MAX_RATE)
        if raw.get("rate") is not None
        else None,
        region=raw.get("region") or default_region,
        expect_items=expect,
    )


def _check_graph(steps: list[Step]) -> None:
    names = [s.name for s in steps]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise JobError(f"duplicate step name(s): {sorted(duplicates)}")
    known = set(names)
    for step in steps:
        for up in step.upstream:
            if up not in known:
                raise JobError(f"step {step.name!r}: refers to unknown step {up!r}")
            if up == step.name:
                raise JobError(f"step {step.name!r}: cannot depend on itself")
    # Depth-first search for cycles, naming one.
    graph = {s.name: s.upstream for s in steps}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for up in graph[node]:
            if state.get(up) == 1:
                cycle = " -> ".join([*trail[trail.index(up) :], node, up]) if up in trail else up
                raise JobError(f"steps form a cycle: {cycle}")
            if up not in state:
                visit(up, [*trail, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def parse_job(raw: Any, *, path: Path | None = None, limits: Limits | None = None) -> Job:
    """Check a parsed job document and build a :class:`Job`.

    :param limits: the bounds to check against (default: :class:`Limits`' defaults)
    :raises JobError: naming the step and the reason for the first problem found
    """
    limits = limits or Limits()
    check_document(raw, limits)
    if not isinstance(raw, Mapping):
        raise JobError("a job file must be a mapping with 'name' and 'steps'")
    unknown = set(raw) - {"name", "steps", "concurrency", "retries", "region", "description"}
    if unknown:
        raise JobError(f"unknown top-level field(s) {sorted(unknown)}")
    name = raw.get("name") or (path.stem if path else None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise JobError("'name' must be 1-64 letters, digits, '_', '.' or '-'")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise JobError("'steps' must be a non-empty list")
    base = path.parent if path else Path.cwd()
    region = raw.get("region")
    steps = [_step(s, i, base, region, limits) for i, s in enumerate(raw_steps)]
    _check_graph(steps)
    retries_raw = raw.get("retries") or {}
    if not isinstance(retries_raw, Mapping) or set(retries_raw) - {
        "max_attempts",
        "base_delay",
        "max_delay",
        "throttle_budget",
        "in_progress_budget",
    }:
        raise JobError(
            "'retries' takes max_attempts, base_delay, max_delay, throttle_budget"
            " and in_progress_budget"
        )
    retries = RetrySettings(
        max_attempts=positive(
            retries_raw.get("max_attempts", 8), "retries.max_attempts", int, MAX_ATTEMPTS
        ),
        base_delay=positive(
            retries_raw.get("base_delay", 0.2), "retries.base_delay", float, MAX_DELAY
        ),
        max_delay=positive(
            retries_raw.get("max_delay", 20.0), "retries.max_delay", float, MAX_DELAY
        ),
        throttle_budget=positive(
            retries_raw.get("throttle_budget", 900.0),
            "retries.throttle_budget",
            float,
            MAX_BUDGET,
        ),
        in_progress_budget=positive(
            retries_raw.get("in_progress_budget", 120.0),
            "retries.in_progress_budget",
            float,
            MAX_BUDGET,
        ),
    )
    concurrency = positive(raw.get("concurrency", 64), "concurrency", int, MAX_CONCURRENCY)
    return Job(name, tuple(steps), concurrency, retries, region, path, limits)


def load_job(path: str | Path, *, limits: Limits | None = None) -> Job:
    """Read and check a job file (YAML; JSON is YAML too, but is read with orjson when .json).

    :param limits: the bounds to check against (default: :class:`Limits`' defaults)
    :raises JobError: for an unreadable file, a syntax error, a limit or any inconsistency
    """
    limits = limits or Limits()
    file = Path(path)
    try:
        with file.open("rb") as handle:
            # One byte more than allowed tells a file at the limit from one beyond it, without
            # reading (or holding) the rest.
            text = handle.read(limits.job_bytes + 1)
    except OSError as exc:
        raise JobError(f"cannot read job file {str(path)!r}: {exc.strerror}") from None
    if len(text) > limits.job_bytes:
        raise JobError(f"{path}: the job file is above {limits.exceeded('job_bytes')}")
    try:
        raw = orjson.loads(text) if file.suffix == ".json" else load_yaml(text, limits)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson stops at 1,024 levels, beyond Limits.depth
            raise JobError(
                f"{path}: job file nests deeper than {limits.exceeded('depth')}"
            ) from None
        raise JobError(f"{path}: invalid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise JobError(f"{path}: invalid YAML: {exc}") from None
    except ValueError as exc:  # a value PyYAML cannot construct, e.g. a 5,000-digit integer
        raise JobError(f"{path}: invalid YAML: {exc}") from None
    except JobError as exc:
        raise JobError(f"{path}: {exc}") from None
    return parse_job(raw, path=file.resolve(), limits=limits)
