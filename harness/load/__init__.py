"""Load testing: an open-model (wrk2-style) runner, scenarios, thresholds, worker processes.

Requests are scheduled at a target arrival rate (with an optional linear ramp) and each is sent
at its intended time by a fixed pool of connections; latency is measured both from the intended
send time (*corrected* for coordinated omission) and from the actual send (*raw*, what a
closed-loop tool reports). See :mod:`harness.load._runner` for why the pool matters.

>>> from harness.load import RateProfile
>>> RateProfile(rate=100, duration=2).total
200
"""

from __future__ import annotations

from harness.load._profile import RateProfile, parse_duration, parse_ramp
from harness.load._result import LoadResult, OperationResult
from harness.load._runner import LoadProgress, LoadRunner
from harness.load._scenario import LoadOperation, Scenario, load_scenario, parse_scenario
from harness.load._thresholds import Threshold, ThresholdResult, evaluate, parse_threshold
from harness.load._workers import TransportOptions, run_load

__all__ = [
    "LoadOperation",
    "LoadProgress",
    "LoadResult",
    "LoadRunner",
    "OperationResult",
    "RateProfile",
    "Scenario",
    "Threshold",
    "ThresholdResult",
    "TransportOptions",
    "evaluate",
    "load_scenario",
    "parse_duration",
    "parse_ramp",
    "parse_scenario",
    "parse_threshold",
    "run_load",
]
