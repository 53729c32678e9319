"""Timeline: per-interval histograms rolled up in time, merged, and written as HdrHistogram logs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from harness.errors import InvalidArgument
from harness.stats import LatencyHistogram, Timeline, read_hdr_log, write_hdr_log


def filled(origin: float = 100.0) -> Timeline:
    timeline = Timeline(origin)
    for i in range(30):  # 10 values per second for 3 s, latency growing by second
        at = origin + i / 10
        timeline.record(at, 0.010 * (1 + int(i / 10)), ok=i % 10 != 0)
    timeline.close()
    return timeline


class TestTimeline:
    def test_values_land_in_their_interval(self) -> None:
        points = filled().points()
        assert [(p.index, p.start, p.count, p.errors) for p in points] == [
            (0, 0.0, 10, 1),
            (1, 1.0, 10, 1),
            (2, 2.0, 10, 1),
        ]
        assert [round(p.latency.p50, 4) for p in points] == [0.01, 0.02, 0.03]
        assert points[0].rate == 10.0
        assert LatencyHistogram.decode(points[2].histogram).count == 10

    def test_only_recent_intervals_stay_open(self) -> None:
        timeline = Timeline()
        for second in range(10):
            timeline.record(second + 0.5, 0.01)
        assert "open=2" in repr(timeline) and "closed=8" in repr(timeline)

    def test_a_late_value_reopens_its_interval(self) -> None:
        timeline = Timeline()
        for second in (0, 1, 2, 3):
            timeline.record(second, 0.01)
        timeline.record(0.5, 0.02)
        timeline.close()
        assert [p.count for p in timeline.points()] == [2, 1, 1, 1]

    def test_gaps_are_filled_with_empty_points(self) -> None:
        timeline = Timeline()
        timeline.record(0.1, 0.01)
        timeline.record(3.2, 0.01)
        timeline.close()
        assert [p.count for p in timeline.points()] == [1, 0, 0, 1]
        assert [p.count for p in timeline.points(fill=False)] == [1, 1]
        assert len(timeline.hdr_intervals()) == 2
        assert timeline.to_json()[1] == {
            "t": 1.0,
            "count": 0,
            "errors": 0,
            "per_s": 0.0,
            "latency": timeline.points()[1].latency.to_json(),
        }

    def test_merge_adds_interval_by_interval_whatever_the_origins(self) -> None:
        ours, theirs = filled(100.0), filled(5000.0)
        theirs_pickled = pickle.loads(pickle.dumps(theirs))
        ours.merge(theirs_pickled)
        points = ours.points()
        assert [p.count for p in points] == [20, 20, 20]
        assert [p.errors for p in points] == [2, 2, 2]
        assert LatencyHistogram.decode(points[1].histogram).count == 20

    def test_merge_refuses_what_cannot_add_up(self) -> None:
        with pytest.raises(InvalidArgument, match="intervals"):
            Timeline(interval=1.0).merge(Timeline(interval=0.5))
        open_one = Timeline()
        open_one.record(0.0, 0.01)
        with pytest.raises(InvalidArgument, match="open intervals"):
            Timeline().merge(open_one)
        with pytest.raises(InvalidArgument, match="interval must be positive"):
            Timeline(interval=0)

    def test_intervals_make_an_hdr_log(self, tmp_path: Path) -> None:
        path = tmp_path / "t.hlog"
        # A start time whose milliseconds round up: the first interval must still be read back.
        start = 1_700_000_000.0006
        write_hdr_log(path, {"op.corrected": filled().hdr_intervals()}, start_time=start)
        merged = read_hdr_log(path)
        assert merged["op.corrected"].count == 30
        assert merged["op.corrected"].max == pytest.approx(0.03, rel=1e-3)
        assert (
            sum(line.startswith("Tag=op.corrected,") for line in path.read_text().splitlines()) == 3
        )
