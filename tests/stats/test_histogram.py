"""LatencyHistogram: known distributions, clamping, coordinated omission, merge and wire forms."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import InvalidArgument
from harness.stats import LatencyHistogram, LatencySummary, read_hdr_log, write_hdr_log

# 3 significant figures keep every value within 1/1024 of the truth; we allow 0.1%.
PRECISION = 0.001
PERCENTILES = (0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0)

latencies = st.lists(
    st.floats(min_value=0.0, max_value=120.0, allow_nan=False, allow_infinity=False), max_size=60
)


def histogram_of(values: list[float]) -> LatencyHistogram:
    hist = LatencyHistogram()
    for value in values:
        hist.record(value)
    return hist


@pytest.fixture(scope="module")
def uniform() -> LatencyHistogram:
    """1, 2, ..., 10000 ms, once each."""
    return histogram_of([ms / 1000 for ms in range(1, 10_001)])


class TestKnownDistribution:
    @pytest.mark.parametrize(("p", "seconds"), [(50, 5.0), (90, 9.0), (99, 9.9), (99.9, 9.99)])
    def test_percentiles(self, uniform: LatencyHistogram, p: float, seconds: float) -> None:
        assert uniform.percentile(p) == pytest.approx(seconds, rel=PRECISION)

    def test_count_min_max_mean(self, uniform: LatencyHistogram) -> None:
        assert uniform.count == 10_000
        assert uniform.min == 0.001  # exact: below 2048 µs every microsecond has its own bucket
        assert uniform.max == pytest.approx(10.0, rel=PRECISION)
        assert uniform.mean == pytest.approx(5.0005, rel=PRECISION)

    def test_summary(self, uniform: LatencyHistogram) -> None:
        summary = uniform.summary()
        assert summary.count == 10_000
        assert summary.p50 == uniform.percentile(50)
        assert summary.p9999 == uniform.percentile(99.99)
        assert summary.min <= summary.p50 <= summary.p90 <= summary.p99 <= summary.p999
        assert summary.p999 <= summary.p9999 <= summary.max
        doc = summary.to_json()
        assert list(doc) == [
            "count",
            "min_ms",
            "mean_ms",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p99_9_ms",
            "p99_99_ms",
            "max_ms",
        ]
        assert doc["min_ms"] == 1.0
        assert doc["p50_ms"] == round(summary.p50 * 1000, 3)

    def test_percentile_distribution(self, uniform: LatencyHistogram) -> None:
        points = uniform.percentile_distribution()
        assert points[0][0] == 0.0
        assert points[0][1] == pytest.approx(0.001, rel=PRECISION)
        assert points[-1] == (100.0, uniform.max)
        assert [p for p, _ in points] == sorted(p for p, _ in points)
        assert [s for _, s in points] == sorted(s for _, s in points)
        # Denser towards the tail: enough points past 99.9 to draw a log-scale plot.
        assert sum(1 for p, _ in points if 99.9 < p < 100) >= 3

    def test_rejects_percentile_out_of_range(self, uniform: LatencyHistogram) -> None:
        for p in (-0.1, 100.1, math.nan):
            with pytest.raises(InvalidArgument, match="percentile"):
                uniform.percentile(p)


class TestEdges:
    def test_empty(self) -> None:
        hist = LatencyHistogram()
        assert hist.count == 0
        assert (hist.min, hist.max, hist.mean, hist.percentile(99)) == (0.0, 0.0, 0.0, 0.0)
        assert hist.summary() == LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        assert set(hist.summary().to_json().values()) == {0}
        assert hist.percentile_distribution() == []
        assert LatencyHistogram.decode(hist.encode()).count == 0

    def test_clamps_to_range(self) -> None:
        hist = LatencyHistogram(lowest_us=1, highest_us=1_000_000)
        for seconds in (-5.0, math.nan, 0.0, 1e-9):
            hist.record(seconds)
        assert hist.count == 4
        assert hist.max == 0.000001
        for seconds in (2.0, math.inf, 1e300):
            hist.record(seconds)
        assert hist.count == 7
        assert hist.max == pytest.approx(1.0, rel=PRECISION)

    def test_lowest_is_a_power_of_two_unit(self) -> None:
        # HdrHistogram rounds lowest_us down to a power of two: 100 µs gives 64 µs buckets.
        hist = LatencyHistogram(lowest_us=100)
        hist.record(0.0)
        assert (hist.min, hist.max) == (0.000064, 0.000127)

    @pytest.mark.parametrize(
        "kwargs",
        [{"lowest_us": 0}, {"lowest_us": 10, "highest_us": 19}, {"significant_figures": 6}],
    )
    def test_rejects_bad_configuration(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(InvalidArgument):
            LatencyHistogram(**kwargs)

    def test_merging_an_empty_histogram_keeps_min(self) -> None:
        # hdrh's own add() resets min to 0 here.
        hist = histogram_of([0.5])
        hist.merge(LatencyHistogram())
        assert hist.min == pytest.approx(0.5, rel=PRECISION)

    def test_merge_with_itself_doubles(self) -> None:
        hist = histogram_of([0.1, 0.2])
        hist.merge(hist)
        assert hist.count == 4

    def test_merge_out_of_range(self) -> None:
        small = LatencyHistogram(highest_us=1_000)
        with pytest.raises(InvalidArgument, match="merge"):
            small.merge(histogram_of([10.0]))

    def test_copy_is_independent(self) -> None:
        hist = histogram_of([0.1])
        twin = hist.copy()
        twin.record(0.2)
        assert (hist.count, twin.count) == (1, 2)
        narrow = LatencyHistogram(highest_us=1_000).copy()  # the configuration comes along
        narrow.record(5.0)
        assert narrow.max == pytest.approx(0.001, rel=PRECISION)

    def test_pickles_through_the_wire_form(self) -> None:
        hist = histogram_of([0.001, 0.25, 3.0])
        again = pickle.loads(pickle.dumps(hist))
        assert again.encode() == hist.encode()

    def test_decode_rejects_garbage(self) -> None:
        for text in ("", "not base64 at all!", "SGVsbG8gd29ybGQ="):
            with pytest.raises(InvalidArgument, match="HdrHistogram"):
                LatencyHistogram.decode(text)


class TestCoordinatedOmission:
    def run(self, *, corrected: bool) -> LatencyHistogram:
        hist = LatencyHistogram()
        for latency in [0.010] * 1000 + [1.0]:
            if corrected:
                hist.record_corrected(latency, 0.010)
            else:
                hist.record(latency)
        return hist

    def test_plain_record_hides_the_stall(self) -> None:
        hist = self.run(corrected=False)
        assert hist.count == 1001
        assert hist.percentile(99) == pytest.approx(0.010, rel=PRECISION)

    def test_corrected_record_adds_the_requests_the_stall_held_back(self) -> None:
        hist = self.run(corrected=True)
        # 990 ms, 980 ms, ..., 10 ms: the 99 requests a 100/s sender would have issued meanwhile.
        assert hist.count == 1001 + 99
        assert hist.percentile(99) == pytest.approx(0.890, rel=PRECISION)
        assert hist.max == pytest.approx(1.0, rel=PRECISION)

    def test_no_interval_means_no_correction(self) -> None:
        hist = LatencyHistogram()
        for interval in (0.0, -1.0, math.nan, math.inf, 5.0):
            hist.record_corrected(1.0, interval)
        assert hist.count == 5

    @given(
        value=st.integers(min_value=1, max_value=5_000_000),
        interval=st.integers(min_value=1, max_value=1_000_000),
    )
    def test_matches_hdrh(self, value: int, interval: int) -> None:
        if value // interval > 20_000:  # keep hdrh's one-call-per-value loop quick
            interval = value // 20_000 + 1
        ours = LatencyHistogram()
        ours.record_corrected(value / 1_000_000, interval / 1_000_000)
        theirs = HdrHistogram(1, 3_600_000_000, 3)
        theirs.record_corrected_value(value, interval)
        assert ours.count == theirs.get_total_count()
        assert ours.encode() == theirs.encode().decode()
        assert ours.min == theirs.get_min_value() / 1_000_000
        assert ours.max == theirs.get_max_value() / 1_000_000

    def test_long_stall_at_a_high_rate_is_cheap(self) -> None:
        # An hour at 1 µs would be 3.6e9 hdrh calls; per bucket it is at most ~23k.
        hist = LatencyHistogram()
        hist.record_corrected(3600.0, 0.000001)
        assert hist.count == 3_600_000_000
        assert hist.percentile(50) == pytest.approx(1800.0, rel=PRECISION)


class TestProperties:
    @given(a=latencies, b=latencies)
    def test_merge_equals_recording_everything(self, a: list[float], b: list[float]) -> None:
        merged = histogram_of(a)
        merged.merge(histogram_of(b))
        whole = histogram_of(a + b)
        assert merged.count == whole.count
        assert merged.encode() == whole.encode()
        assert (merged.min, merged.max) == (whole.min, whole.max)
        for p in PERCENTILES:
            assert merged.percentile(p) == whole.percentile(p)

    @given(values=latencies)
    def test_encode_decode_round_trip(self, values: list[float]) -> None:
        hist = histogram_of(values)
        again = LatencyHistogram.decode(hist.encode())
        assert again.summary() == hist.summary()
        for p in PERCENTILES:
            assert again.percentile(p) == hist.percentile(p)
        again.record(0.5)  # a decoded histogram keeps recording
        assert again.count == hist.count + 1

    @given(values=latencies.filter(bool), ps=st.lists(st.floats(0, 100), min_size=2))
    def test_percentile_is_monotonic(self, values: list[float], ps: list[float]) -> None:
        hist = histogram_of(values)
        at = [hist.percentile(p) for p in sorted(ps)]
        assert at == sorted(at)
        assert hist.min <= at[0] and at[-1] <= hist.max


class TestHdrLog:
    def intervals(self, tag: str) -> list[tuple[float, float, LatencyHistogram]]:
        scale = 1.0 if tag.endswith("call") else 0.5
        return [
            (100.0 + i, 101.0 + i, histogram_of([scale * (i + 1) * n / 1000 for n in range(1, 50)]))
            for i in range(3)
        ]

    def test_round_trip(self, tmp_path: Path) -> None:
        path = tmp_path / "latency.hlog"
        logged = {tag: self.intervals(tag) for tag in ("iot.CreateThing.call", "iot.CreateThing")}
        write_hdr_log(path, logged, start_time=1_700_000_000.0)

        lines = path.read_text().splitlines()
        assert lines[0].startswith("#[StartTime: 1700000000.000 (seconds since epoch), 2023-11-14")
        assert lines[1].startswith("#[BaseTime: 1700000000.000")
        legend = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
        assert legend in lines[:4]
        body = [line for line in lines if line.startswith("Tag=")]
        assert len(body) == 6
        assert body[0].startswith("Tag=iot.CreateThing,0.000000,1.000000,24.")  # time order

        read = read_hdr_log(path)
        assert sorted(read) == sorted(logged)
        for tag, series in logged.items():
            whole = LatencyHistogram()
            for _, _, hist in series:
                whole.merge(hist)
            assert read[tag].encode() == whole.encode()
            assert read[tag].summary() == whole.summary()

    def test_hdrh_reader_sees_absolute_times(self, tmp_path: Path) -> None:
        path = tmp_path / "latency.hlog"
        write_hdr_log(path, {"op": self.intervals("op")}, start_time=1_700_000_000.0)
        reader = HistogramLogReader(str(path), None)
        try:
            starts = [reader.get_next_interval_histogram().get_start_time_stamp() for _ in range(3)]
        finally:
            reader.close()
        assert starts == [1_700_000_000_000.0, 1_700_000_001_000.0, 1_700_000_002_000.0]

    def test_untagged_and_empty(self, tmp_path: Path) -> None:
        path = tmp_path / "latency.hlog"
        write_hdr_log(path, {"": [(0.0, 0.0, histogram_of([0.2]))], "none": []})
        assert path.read_text().splitlines()[-1].startswith("0.000000,0.000000,200.")
        read = read_hdr_log(path)
        assert list(read) == [""]
        assert read[""].count == 1

    @pytest.mark.parametrize(
        "logged",
        [
            {"a,b": []},
            {"a b": []},
            {"op": [(2.0, 1.0, LatencyHistogram())]},
            {"op": [(math.nan, 1.0, LatencyHistogram())]},
        ],
    )
    def test_rejects_bad_input(
        self, tmp_path: Path, logged: dict[str, list[tuple[float, float, LatencyHistogram]]]
    ) -> None:
        with pytest.raises(InvalidArgument):
            write_hdr_log(tmp_path / "bad.hlog", logged)
