"""Thresholds: parsing (and naming what is malformed), evaluation and the margin messages."""

from __future__ import annotations

import pytest

from harness.errors import InvalidArgument
from harness.load import LoadResult, OperationResult, RateProfile, evaluate, parse_threshold
from harness.load._thresholds import check_selectors


def result() -> LoadResult:
    """100/s for 10 s: 950 sent in the window; CreateThing at 10..100 ms with 5 errors,
    ListThings at 300 ms."""
    made = LoadResult("t", RateProfile(100, 10), 32, 1024, 0.01)
    made.sent = made.scheduled = 1000
    made.sent_in_window = 950
    for name, latencies, failures in (
        ("iot.CreateThing", [0.001 * (10 + i % 91) for i in range(500)], 5),
        ("iot.ListThings", [0.3] * 500, 0),
    ):
        op = made.operations[name] = OperationResult(name)
        for i, latency in enumerate(latencies):
            ok = i >= failures
            code = None if ok else "ThrottlingException"
            for target in (op, made.total):
                target.stats.record_call(latency, ok=ok, attempts=1, error_code=code)
                target.corrected.record(latency)
    return made


class TestParse:
    @pytest.mark.parametrize(
        ("text", "selector", "metric", "op", "limit", "unit"),
        [
            ("p99<200ms", None, "p99", "<", 0.2, "latency"),
            ("CreateDeployment:p99<200ms", "CreateDeployment", "p99", "<", 0.2, "latency"),
            ("iot.CreateThing:max<1s", "iot.CreateThing", "max", "<", 1.0, "latency"),
            ("iot:CreateThing:max<1s", "iot:CreateThing", "max", "<", 1.0, "latency"),
            ("iot:create_thing : p99<1s", "iot:create_thing", "p99", "<", 1.0, "latency"),
            ("p50<=80ms", None, "p50", "<=", 0.08, "latency"),
            ("p99.99 < 1500us", None, "p99.99", "<", 0.0015, "latency"),
            ("errors<0.1%", None, "errors", "<", 0.001, "ratio"),
            ("errors<=5", None, "errors", "<=", 5.0, "count"),
            ("rate>=95%", None, "rate", ">=", 0.95, "ratio"),
            ("rate>450/s", None, "rate", ">", 450.0, "per_s"),
        ],
    )
    def test_forms(
        self, text: str, selector: str | None, metric: str, op: str, limit: float, unit: str
    ) -> None:
        threshold = parse_threshold(text)
        assert (threshold.selector, threshold.metric, threshold.op, threshold.unit) == (
            selector,
            metric,
            op,
            unit,
        )
        assert threshold.limit == pytest.approx(limit)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("p99", "expected \\[OPERATION:\\]METRIC<VALUE"),
            ("p99=200ms", "expected"),
            ("p99<200", "needs a unit"),
            ("p101<1s", "unknown metric"),
            ("latency<1s", "unknown metric"),
            ("errors<5ms", "percentage or a count"),
            ("rate>=95", "% of the target"),
            ("CreateThing:rate>=95%", "whole run"),
        ],
    )
    def test_malformed_thresholds_are_named(self, text: str, message: str) -> None:
        with pytest.raises(InvalidArgument, match=message) as caught:
            parse_threshold(text)
        assert repr(text) in str(caught.value)

    def test_selectors_must_name_one_operation(self) -> None:
        names = ["iot.CreateThing", "greengrassv2.ListDeployments", "proton.ListDeployments"]
        for selector in ("CreateThing", "create_thing", "iot.CreateThing", "iot:CreateThing"):
            check_selectors([parse_threshold(f"{selector}:p99<1s")], names)
        check_selectors([parse_threshold("proton:list_deployments:p99<1s")], names)
        with pytest.raises(InvalidArgument, match=r"ambiguous.*greengrassv2:ListDeployments"):
            check_selectors([parse_threshold("ListDeployments:p99<1s")], names)
        with pytest.raises(InvalidArgument, match="names no operation"):
            check_selectors([parse_threshold("ListThings:p99<1s")], names)
        with pytest.raises(InvalidArgument, match="no operation 'NoSuchThing'"):
            check_selectors([parse_threshold("NoSuchThing:p99<1s")], names)


class TestEvaluate:
    def test_pass_and_fail_with_margins(self) -> None:
        texts = [
            "CreateThing:p50<100ms",
            "CreateThing:max<50ms",
            "ListThings:p99<=301ms",
            "p99<250ms",
            "errors<1%",
            "errors<0.1%",
            "CreateThing:errors<=5",
            "rate>=95%",
            "rate>=96%",
            "rate>90/s",
        ]
        checked = evaluate([parse_threshold(t) for t in texts], result())
        verdicts = {c.threshold.text: c.ok for c in checked}
        assert verdicts == {
            "CreateThing:p50<100ms": True,
            "CreateThing:max<50ms": False,
            "ListThings:p99<=301ms": True,
            "p99<250ms": False,
            "errors<1%": True,
            "errors<0.1%": False,
            "CreateThing:errors<=5": True,
            "rate>=95%": True,
            "rate>=96%": False,
            "rate>90/s": True,
        }
        by_text = {c.threshold.text: c for c in checked}
        assert by_text["CreateThing:max<50ms"].describe() == (
            "CreateThing:max<50ms: 100.0 ms, over by 50.0 ms (100.1%)"  # HDR: 100.031 ms
        )
        assert by_text["rate>=96%"].describe() == "rate>=96%: 95.000%, under by 1.000% (1.0%)"
        assert by_text["errors<1%"].actual == pytest.approx(0.005)
        assert by_text["errors<1%"].to_json()["ok"] is True
