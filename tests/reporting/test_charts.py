"""The SVG chart module: round ticks, the percentile log axis, escaping, one path per series."""

from __future__ import annotations

import itertools
import re

import pytest

from harness.reporting._charts import Line, nice_ticks, percentile_chart, time_chart


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0, 1, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 170, [0, 50, 100, 150, 200]),
        (0, 0.004, [0.0, 0.001, 0.002, 0.003, 0.004]),
        (0, 0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_nice_ticks_are_round_and_cover_the_range(
    low: float, high: float, ticks: list[float]
) -> None:
    assert nice_ticks(low, high) == ticks


def test_the_percentile_axis_is_logarithmic_in_nines() -> None:
    points = [(0.0, 1.0), (90.0, 2.0), (99.0, 3.0), (99.9, 4.0), (100.0, 5.0)]
    svg = percentile_chart("p <plot>", [Line("a & b", points)])
    labels = re.findall(
        r'<text class="tick" x="([\d.]+)" y="[\d.]+" text-anchor="middle">([^<]+)<', svg
    )
    assert [text for _, text in labels] == ["0%", "90%", "99%", "99.9%", "99.99%"]
    xs = [float(x) for x, _ in labels]
    assert all(b - a == pytest.approx(xs[1] - xs[0], abs=0.2) for a, b in itertools.pairwise(xs))
    path = re.search(r'data-points="5" d="M([^"]+)"', svg)
    assert path is not None
    drawn = [float(p.split(",")[0]) for p in path.group(1).split(" L")]
    # 0%, 90%, 99% and 99.9% sit on their ticks; the maximum (100%) at the end of the axis.
    assert drawn[:4] == pytest.approx(xs[:4], abs=0.1)
    assert drawn[4] == pytest.approx(xs[-1], abs=0.1)
    assert "p &lt;plot&gt;" in svg and "a &amp; b" in svg


def test_a_time_chart_draws_each_series_dashed_or_not() -> None:
    svg = time_chart(
        "t",
        [Line("p50", [(0.5, 1), (1.5, 2)]), Line("p99", [(0.5, 3), (1.5, 4)], dashed=True)],
        y_label="ms",
    )
    assert svg.count('<path class="series"') == 2
    assert svg.count('stroke-dasharray="6 4"') == 2  # the dashed path and its legend line
    assert ">time (s)</text>" in svg and ">ms</text>" in svg
