"""Load scenarios: which operations, in which mix, with which parameters, at which rate.

A scenario file (YAML or JSON)::

    name: deployments
    rate: 200                 # requests per second, all operations together
    duration: 60s             # ramp included
    ramp: 10s                 # or FROM:TO:DURATION, e.g. "100:500:30s"
    connections: 32           # requests on the wire at once (the closed-loop pool)
    operations:
      - operation: greengrassv2:CreateDeployment   # any operation reference, or service: +
                                                   #   operation:
        weight: 80
        params:
          targetArn: "arn:aws:iot:us-east-1:123456789012:thinggroup/load-{n}"
      - operation: greengrassv2:ListDeployments
        weight: 20
    thresholds: ["CreateDeployment:p99<200ms", "errors<0.1%"]

Parameter values are plain data; strings may hold ``{n}`` (the request's number in the run,
unique across workers), ``{worker}`` and ``{uuid}`` (a fresh UUID4), with Python format specs
(``{n:06d}``); ``{{`` and ``}}`` are literal braces. A string that is exactly ``{n}`` or
``{worker}`` renders as an integer.
"""

from __future__ import annotations

import bisect
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError, InvalidArgument
from harness.load._profile import RateProfile, parse_duration, parse_ramp
from harness.load._thresholds import Threshold, check_selectors, parse_threshold
from harness.model import format_issues, parse_operation_ref

__all__ = ["LoadOperation", "Scenario", "load_scenario", "parse_scenario"]

# The golden ratio's fractional part: i * PHI mod 1 spreads any prefix of the requests evenly
# over [0, 1) (a Weyl sequence), so the mix holds over every stretch of the run, not on average.
_PHI = (math.sqrt(5) - 1) / 2
_KEYS = {
    "name",
    "rate",
    "duration",
    "ramp",
    "connections",
    "max_in_flight",
    "retries",
    "region",
    "operations",
    "thresholds",
    "late_ms",
}
_OPERATION_KEYS = {"service", "operation", "weight", "params", "validate"}


class _Fields:
    """The placeholder values of one request; ``{uuid}`` is drawn only when used."""

    __slots__ = ("n", "worker")

    def __init__(self, n: int, worker: int) -> None:
        self.n, self.worker = n, worker

    def __getitem__(self, key: str) -> Any:
        if key == "n":
            return self.n
        if key == "worker":
            return self.worker
        if key == "uuid":
            return str(uuid.uuid4())
        raise KeyError(key)


def _render(value: Any, fields: _Fields) -> Any:
    if isinstance(value, str):
        if value == "{n}":
            return fields.n
        if value == "{worker}":
            return fields.worker
        return value.format_map(fields) if "{" in value or "}" in value else value
    if isinstance(value, dict):
        return {k: _render(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, fields) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class LoadOperation:
    """One operation of a scenario.

    :param service: botocore service name (``"greengrassv2"``)
    :param operation: API operation name (``"CreateDeployment"``)
    :param weight: its share of the requests, relative to the other operations' weights
    :param params: the parameter template (plain data with placeholders)
    """

    service: str
    operation: str
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``service.Operation``, the key of its statistics (``"iot.CreateThing"``)."""
        return f"{self.service}.{self.operation}"

    def render(self, n: int, worker: int = 0) -> dict[str, Any]:
        """The parameters of request ``n``.

        :raises InvalidArgument: for an unknown placeholder or a bad format spec
        """
        try:
            rendered: dict[str, Any] = _render(self.params, _Fields(n, worker))
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidArgument(
                f"{self.name}: params: bad placeholder {exc} (known: {{n}}, {{worker}}, "
                "{uuid}; write {{ and }} for literal braces)"
            ) from None
        return rendered


@dataclass(frozen=True, slots=True)
class Scenario:
    """A load test: operations with weights, the arrival profile, the client's limits.

    :param connections: requests on the wire at once; a due request waits for a free one
    :param max_in_flight: requests due but not finished (waiting plus on the wire); past it the
        scheduler waits, and the requests it launches late keep their intended times
    :param retries: retries per call after throttling or transient errors (0: measure only)
    :param late_after: a request sent more than this many seconds after its intended time is a
        late start
    """

    name: str
    operations: tuple[LoadOperation, ...]
    profile: RateProfile
    connections: int = 32
    max_in_flight: int = 1024
    retries: int = 0
    region: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    late_after: float = 0.010
    _cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.operations:
            raise InvalidArgument(f"scenario {self.name!r} has no operations")
        if self.connections < 1 or self.max_in_flight < self.connections:
            raise InvalidArgument(
                f"need 1 <= connections <= max_in_flight, got connections={self.connections} "
                f"and max_in_flight={self.max_in_flight}"
            )
        if self.retries < 0:
            raise InvalidArgument(f"retries cannot be negative, got retries={self.retries}")
        total = sum(op.weight for op in self.operations)
        running, cumulative = 0.0, []
        for op in self.operations:
            running += op.weight
            cumulative.append(running / total)
        object.__setattr__(self, "_cumulative", tuple(cumulative))
        check_selectors(self.thresholds, [op.name for op in self.operations])

    def pick(self, n: int) -> LoadOperation:
        """The operation of request ``n`` (deterministic; the shares follow the weights)."""
        if len(self.operations) == 1:
            return self.operations[0]
        point = (n * _PHI) % 1.0
        index = bisect.bisect_right(self._cumulative, point)
        return self.operations[min(index, len(self.operations) - 1)]


def _operation(entry: Any, where: str) -> LoadOperation:
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where}: expected a mapping with service and operation")
    unknown = set(entry) - _OPERATION_KEYS
    if unknown:
        raise InvalidArgument(f"{where}: unknown keys {sorted(unknown)}")
    service, name = entry.get("service"), entry.get("operation")
    if not isinstance(name, str) or not name or not isinstance(service, str | None):
        raise InvalidArgument(
            f"{where}: needs an operation (iot:CreateThing, or service: + operation:)"
        )
    try:
        # The one operation syntax; without a service, an unprefixed name is looked up in the
        # seed services (and must be in only one of them).
        service, model = parse_operation_ref(name, [service] if service else None)
    except HarnessError as exc:  # an unknown service or operation: say where it was named
        raise InvalidArgument(f"{where}: {exc}") from None
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise InvalidArgument(f"{where}: weight must be a positive number, got {weight!r}")
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidArgument(f"{where}: params must be a mapping")
    op = LoadOperation(str(service), model.name, float(weight), params)
    sample = op.render(0)
    if entry.get("validate", True):
        issues = model.validate(sample)
        if issues:
            raise InvalidArgument(
                f"{where} ({op.name}): request 0 is invalid: {format_issues(issues)} "
                "(set validate: false to send invalid requests on purpose)"
            )
    return op


def _integer(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{key} must be an integer, got {value!r}")
    return value


def _late_after(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidArgument(f"late_ms must be a number of milliseconds, got {value!r}")
    return float(value) / 1000


def parse_scenario(data: Any, where: str = "scenario") -> Scenario:
    """Build a :class:`Scenario` from a parsed scenario document.

    :raises InvalidArgument: naming the key that is missing or wrong
    """
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected a mapping at the top level")
    unknown = set(data) - _KEYS
    if unknown:
        raise InvalidArgument(f"{where}: unknown keys {sorted(unknown)}")
    entries = data.get("operations")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument(f"{where}: operations must be a non-empty list")
    operations = tuple(_operation(e, f"{where}: operations[{i}]") for i, e in enumerate(entries))
    ramp_from, ramp_to, ramp = parse_ramp(data["ramp"]) if data.get("ramp") else (None, None, 0.0)
    rate = data.get("rate")
    rate = ramp_to if rate is None else rate
    if rate is None or "duration" not in data:
        raise InvalidArgument(f"{where}: rate and duration are required (or --rate, --duration)")
    if isinstance(rate, str):
        rate = rate.removesuffix("/s")
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{where}: rate {rate!r} is not a number of requests/s") from None
    if ramp_to is not None and ramp_to != rate:
        raise InvalidArgument(f"{where}: the ramp ends at {ramp_to:g}/s but the rate is {rate:g}/s")
    profile = RateProfile(rate, parse_duration(data["duration"]), ramp, ramp_from or 0.0)
    thresholds = data.get("thresholds") or []
    if not isinstance(thresholds, list):
        raise InvalidArgument(f"{where}: thresholds must be a list of strings")
    return Scenario(
        name=str(data.get("name") or operations[0].name),
        operations=operations,
        profile=profile,
        connections=_integer(data, "connections", 32),
        max_in_flight=_integer(data, "max_in_flight", 1024),
        retries=_integer(data, "retries", 0),
        region=data.get("region"),
        thresholds=tuple(parse_threshold(str(t)) for t in thresholds),
        late_after=_late_after(data.get("late_ms", 10)),
    )


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read and parse a scenario file; ``overrides`` (command-line values) replace its keys,
    except ``thresholds``, which are added to the file's.

    :raises InvalidArgument: when the file cannot be read or parsed, naming it
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgument(f"cannot read scenario {str(path)!r}: {exc}") from None
    if isinstance(data, dict) and overrides:
        extra = list(overrides.get("thresholds") or [])
        data = {**data, **{k: v for k, v in overrides.items() if k != "thresholds"}}
        data["thresholds"] = list(data.get("thresholds") or []) + extra
    try:
        return parse_scenario(data, str(path))
    except InvalidArgument:
        raise
    except HarnessError as exc:
        raise InvalidArgument(f"{path}: {exc}") from None
