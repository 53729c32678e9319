"""Pass/fail gates on a load result: ``[OPERATION:]METRIC OP VALUE``.

============================  ==================================================================
``p99<200ms``                 corrected latency percentile of all operations (any ``pNN.NN``)
``CreateDeployment:p99<200ms``  of one operation (any operation reference: ``Operation``,
                              ``python_name``, ``service:Operation``, ``service.Operation``)
``iot:CreateThing:max<1s``    also ``mean``, ``min``; units ``us``, ``ms``, ``s``
``errors<0.1%``               failed calls / calls; ``errors<=5`` counts them instead
``rate>=95%``                 achieved / target rate; ``rate>=450/s`` the achieved rate itself
============================  ==================================================================

Latency gates use the coordinated-omission-corrected latency (from each request's intended send
time): that is what a user waiting for the service sees.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import HarnessError, InvalidArgument, ModelError
from harness.model import parse_operation_ref

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from harness.load._result import LoadResult

__all__ = ["Threshold", "ThresholdResult", "check_selectors", "evaluate", "parse_threshold"]

_SYNTAX = re.compile(
    r"^\s*(?:(?P<selector>[A-Za-z][\w.:-]*)\s*:\s*)?(?P<metric>[a-z][a-z0-9.]*)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|ms|us|µs|s|/s)?\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_LATENCY_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Threshold:
    """One gate. ``limit`` is in seconds for latency, a ratio for ``%``, else a plain number.

    :param text: the threshold as written, for messages
    :param selector: the operation it is about, or ``None`` for all of them
    :param metric: ``"p99.9"``, ``"max"``, ``"mean"``, ``"min"``, ``"errors"`` or ``"rate"``
    :param op: ``"<"``, ``"<="``, ``">"`` or ``">="``
    :param unit: ``"latency"``, ``"ratio"``, ``"count"`` or ``"per_s"``
    """

    text: str
    selector: str | None
    metric: str
    op: str
    limit: float
    unit: str

    def holds(self, actual: float) -> bool:
        """Whether ``actual`` (in the threshold's unit) satisfies the gate."""
        return _OPS[self.op](actual, self.limit)


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold.

    :raises InvalidArgument: naming the threshold and what is wrong with it
    """
    found = _SYNTAX.match(text)
    if found is None:
        raise InvalidArgument(
            f"threshold {text!r}: expected [OPERATION:]METRIC<VALUE, e.g. p99<200ms, "
            "errors<0.1%, rate>=95%"
        )
    selector, metric, op = found["selector"], found["metric"], found["op"]
    number, unit = float(found["number"]), found["unit"]
    if metric == "errors":
        if unit not in ("%", None):
            raise InvalidArgument(f"threshold {text!r}: errors are a percentage or a count")
        kind, limit = ("ratio", number / 100) if unit == "%" else ("count", number)
    elif metric == "rate":
        if selector is not None:
            raise InvalidArgument(
                f"threshold {text!r}: rate is about the whole run, not one operation"
            )
        if unit not in ("%", "/s"):
            raise InvalidArgument(f"threshold {text!r}: rate is a % of the target or N/s")
        kind, limit = ("ratio", number / 100) if unit == "%" else ("per_s", number)
    else:
        percentile = _PERCENTILE.match(metric)
        if metric not in ("max", "mean", "min") and (
            percentile is None or not 0 <= float(percentile[1]) <= 100
        ):
            raise InvalidArgument(
                f"threshold {text!r}: unknown metric {metric!r} "
                "(p50, p99.9, max, mean, min, errors, rate)"
            )
        if unit not in _LATENCY_UNITS:
            raise InvalidArgument(f"threshold {text!r}: a latency needs a unit: us, ms or s")
        kind, limit = "latency", number * _LATENCY_UNITS[unit]
    return Threshold(text.strip(), selector, metric, op, limit, kind)


def resolve(selector: str, names: Sequence[str]) -> str:
    """The operation name (``service.Operation``) that ``selector`` means among ``names``.

    ``selector`` is any operation reference (:func:`~harness.model.parse_operation_ref`),
    looked up in the services of ``names``.

    :raises InvalidArgument: when it names none of them, or several
    """
    services = [n.partition(".")[0] for n in names]
    try:
        service, op = parse_operation_ref(selector, services)
        name = f"{service}.{op.name}"
    except ModelError:
        name = ""  # unknown to the models: said below, with the operations of this load
    except HarnessError as exc:  # ambiguous, or not an operation reference at all
        raise InvalidArgument(f"threshold operation {selector!r}: {exc}") from None
    if name not in names:
        raise InvalidArgument(
            f"threshold operation {selector!r} names no operation of this load; "
            f"known: {', '.join(names)}"
        )
    return name


def check_selectors(thresholds: Sequence[Threshold], names: Sequence[str]) -> None:
    """Check that every threshold's operation is one of ``names``.

    :raises InvalidArgument: naming the threshold that is not
    """
    for threshold in thresholds:
        if threshold.selector is not None:
            try:
                resolve(threshold.selector, names)
            except InvalidArgument as exc:
                raise InvalidArgument(f"threshold {threshold.text!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """A threshold checked against a result: the figure and whether it held."""

    threshold: Threshold
    actual: float
    ok: bool

    def describe(self) -> str:
        """One line: ``"p99<200ms: 245.1 ms, over by 45.1 ms (22.6%)"``."""
        return f"{self.threshold.text}: {self.detail()}"

    def detail(self) -> str:
        """The figure and the margin: ``"245.1 ms, over by 45.1 ms (22.6%)"``."""
        t = self.threshold
        actual, limit = _show(self.actual, t.unit), _show(t.limit, t.unit)
        gap = abs(self.actual - t.limit)
        relative = f" ({gap / t.limit:.1%})" if t.limit else ""
        if self.ok:
            return f"{actual} (limit {limit}, {_show(gap, t.unit)} to spare)"
        side = "over" if t.op in ("<", "<=") else "under"
        return f"{actual}, {side} by {_show(gap, t.unit)}{relative}"

    def to_json(self) -> dict[str, object]:
        """Return the threshold, the figure, the limit and the verdict as a JSON-ready dict."""
        t = self.threshold
        return {
            "threshold": t.text,
            "ok": self.ok,
            "actual": round(self.actual, 6),
            "limit": t.limit,
            "unit": "s" if t.unit == "latency" else t.unit,
            "message": self.describe(),
        }


def _show(value: float, unit: str) -> str:
    if unit == "latency":
        return f"{value * 1000:.1f} ms"
    if unit == "ratio":
        return f"{value:.3%}"
    if unit == "per_s":
        return f"{value:.1f}/s"
    return f"{value:g}"


def _measure(threshold: Threshold, result: LoadResult) -> float:
    name = resolve(threshold.selector, result.names) if threshold.selector else None
    if threshold.metric == "rate":
        return result.achieved_rate if threshold.unit == "per_s" else result.rate_ratio
    calls, failures = result.call_counts(name)
    if threshold.metric == "errors":
        if threshold.unit == "count":
            return float(failures)
        return failures / calls if calls else 0.0
    hist = result.corrected_latency(name)
    if threshold.metric == "max":
        return hist.max
    if threshold.metric == "min":
        return hist.min
    if threshold.metric == "mean":
        return hist.mean
    return hist.percentile(float(threshold.metric[1:]))


def evaluate(thresholds: Sequence[Threshold], result: LoadResult) -> list[ThresholdResult]:
    """Check every threshold against ``result``, in order."""
    checked = []
    for threshold in thresholds:
        actual = _measure(threshold, result)
        checked.append(ThresholdResult(threshold, actual, threshold.holds(actual)))
    return checked
