"""The HTML report: one self-contained file (inline CSS and SVG, no script, no network).

A report is a title and :class:`ReportSection`\\ s. A section holds key facts, free tables (a
fuzz run's violations, a load run's thresholds), a :class:`~harness.stats.StatsBook` (one row
per operation), and per-operation latency (:class:`OperationLatency`: histograms drawn as
percentile plots, timelines drawn as throughput and latency over time). ``harness run --html``,
``harness load --html`` and ``harness fuzz --html`` build sections from what they measured
(:func:`stats_section`, :func:`load_section`) and write them with :func:`write_html_report`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from harness.reporting._charts import Line, percentile_chart, time_chart

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from harness.load import LoadResult, ThresholdResult
    from harness.stats import LatencyHistogram, StatsBook, Timeline, TimelinePoint

__all__ = [
    "OperationLatency",
    "ReportSection",
    "ReportTable",
    "load_section",
    "render_html_report",
    "stats_section",
    "write_html_report",
]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1340px;padding:0 1rem;color:#1b1f24;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.4rem;border-bottom:1px solid #d0d7de}
h3{margin:1.6rem 0 .4rem}.sub{color:#57606a;margin-top:0}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2rem 1.2rem}
dl.facts dt{color:#57606a}dl.facts dd{margin:0;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f6f8fa}
tr.fail td{background:#ffebe9}tr.ok td{background:#dafbe1}
p.note{background:#fff8c5;border:1px solid #d4a72c;padding:.4rem .8rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
svg.chart{border:1px solid #d0d7de;background:#fff;font-size:11px}
svg .grid line{stroke:#eaeef2}svg .frame{fill:none;stroke:#8c959f}
svg .series{fill:none;stroke-width:1.8}svg .legend line{stroke-width:2}
svg .chart-title{font-size:13px;font-weight:600}svg .axis-label{font-size:12px;fill:#57606a}
svg .tick{fill:#57606a}
"""
_HEADERS = ("p50", "p90", "p99", "p99.9", "p99.99", "max")


@dataclass(frozen=True, slots=True)
class ReportTable:
    """A free table; ``row_classes`` may mark rows ``"ok"`` or ``"fail"`` (coloured)."""

    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    row_classes: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class OperationLatency:
    """The latency of one operation, drawn and tabulated.

    :param histograms: curves of its percentile plot by label (``{"corrected": h, "raw": h}``)
    :param timelines: by label: p50 and p99 over time; the first one's counts also give the
        throughput over time
    :param dashed: labels drawn dashed (secondary figures, such as raw latency)
    """

    name: str
    histograms: Mapping[str, LatencyHistogram]
    timelines: Mapping[str, Timeline] = field(default_factory=dict)
    dashed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ReportSection:
    """One part of a report.

    :param facts: key figures, shown as a list of name and value
    :param notes: warnings shown highlighted (e.g. "the client did not keep up")
    :param stats: one table row per operation (calls, errors, call latency); without
        ``operations`` its call and attempt latency are also plotted per operation
    :param throughput: lines over time (seconds, per second) for the whole section
    """

    title: str
    facts: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()
    tables: Sequence[ReportTable] = ()
    stats: StatsBook | None = None
    operations: Sequence[OperationLatency] = ()
    throughput: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)


def _mid(point: TimelinePoint) -> float:
    """Where an interval's figure is drawn: it describes the whole interval, not its start."""
    return (point.start + point.end) / 2


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _table(table: ReportTable) -> str:
    out = [f"<h3>{escape(table.title)}</h3><table><thead><tr>"]
    out.extend(f"<th>{escape(h)}</th>" for h in table.headers)
    out.append("</tr></thead><tbody>")
    for index, row in enumerate(table.rows):
        css = table.row_classes[index] if index < len(table.row_classes) else ""
        out.append(f'<tr class="{escape(css)}">' if css else "<tr>")
        out.extend(f"<td>{escape(str(cell))}</td>" for cell in row)
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _stats_tables(book: StatsBook) -> list[ReportTable]:
    rows: list[list[str]] = []
    errors: list[list[str]] = []
    for stats in book:
        lat = stats.call_latency.summary()
        rows.append(
            [stats.operation, str(stats.calls), str(stats.successes), str(stats.failures)]
            + [str(stats.throttles), str(stats.retries), f"{stats.rate():.1f}"]
            + [_ms(v) for v in (lat.p50, lat.p90, lat.p99, lat.p999, lat.p9999, lat.max)]
        )
        errors.extend([stats.operation, code, str(n)] for code, n in sorted(stats.errors.items()))
    headers = ["operation", "calls", "ok", "failed", "throttles", "retries", "calls/s"]
    tables = [ReportTable("Operations", headers + [f"{h} ms" for h in _HEADERS], rows)]
    if errors:
        tables.append(ReportTable("Errors by code", ["operation", "error", "calls"], errors))
    return tables


def _latency_table(operations: Sequence[OperationLatency]) -> ReportTable:
    rows = []
    for op in operations:
        for label, hist in op.histograms.items():
            s = hist.summary()
            values = (s.p50, s.p90, s.p99, s.p999, s.p9999, s.max)
            rows.append([op.name, label, str(s.count), _ms(s.mean), *[_ms(v) for v in values]])
    headers = ["operation", "latency", "count", "mean ms", *[f"{h} ms" for h in _HEADERS]]
    return ReportTable("Latency", headers, rows)


def _operation_charts(op: OperationLatency) -> str:
    curves = [
        Line(label, [(p, v * 1000) for p, v in hist.percentile_distribution()], label in op.dashed)
        for label, hist in op.histograms.items()
        if hist.count
    ]
    charts = [percentile_chart(f"{op.name}: latency by percentile", curves)]
    if op.timelines:
        over_time = []
        for label, timeline in op.timelines.items():
            points = [p for p in timeline.points() if p.count]
            for name, pick in (("p50", 0), ("p99", 1)):
                values = [(_mid(p), (p.latency.p50, p.latency.p99)[pick] * 1000) for p in points]
                over_time.append(Line(f"{label} {name}", values, label in op.dashed))
        charts.append(time_chart(f"{op.name}: latency over time", over_time, y_label="ms"))
        first = next(iter(op.timelines.values()))
        done = [(_mid(p), p.rate) for p in first.points()]
        charts.append(
            time_chart(
                f"{op.name}: throughput",
                [Line("completed", done)],
                y_label="requests/s",
            )
        )
    return f'<h3>{escape(op.name)}</h3><div class="charts">{"".join(charts)}</div>'


def _section(section: ReportSection) -> str:
    out = [f"<section><h2>{escape(section.title)}</h2>"]
    if section.facts:
        out.append('<dl class="facts">')
        out.extend(
            f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in section.facts.items()
        )
        out.append("</dl>")
    out.extend(f'<p class="note">{escape(note)}</p>' for note in section.notes)
    tables = list(section.tables)
    operations = list(section.operations)
    if section.stats is not None:
        tables.extend(_stats_tables(section.stats))
        if not operations:
            operations = [
                OperationLatency(
                    s.operation,
                    {"call": s.call_latency, "attempt": s.attempt_latency},
                    dashed=frozenset({"attempt"}),
                )
                for s in section.stats
            ]
    if operations:
        tables.append(_latency_table(operations))
    out.extend(_table(t) for t in tables)
    if section.throughput:
        lines = [Line(label, list(points)) for label, points in section.throughput.items()]
        chart = time_chart("throughput", lines, y_label="requests/s")
        out.append(f'<div class="charts">{chart}</div>')
    out.extend(_operation_charts(op) for op in operations)
    out.append("</section>")
    return "".join(out)


def render_html_report(
    title: str, sections: Sequence[ReportSection], *, subtitle: str | None = None
) -> str:
    """Return the report as one HTML document (no external resources)."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    sub = f"{escape(subtitle)} · " if subtitle else ""
    body = "".join(_section(s) for s in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="sub">{sub}generated {when} by harness</p>'
        f"{body}</body></html>\n"
    )


def write_html_report(
    path: str | Path,
    title: str,
    sections: Sequence[ReportSection],
    *,
    subtitle: str | None = None,
) -> None:
    """Write :func:`render_html_report` to ``path``, atomically (temporary file, renamed)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(render_html_report(title, sections, subtitle=subtitle), "utf-8")
    os.replace(temporary, target)


def stats_section(
    title: str, book: StatsBook, *, facts: Mapping[str, str] | None = None
) -> ReportSection:
    """A section of per-operation statistics (``harness run``): table, errors, latency plots."""
    return ReportSection(title, facts=dict(facts or {}), stats=book)


def load_section(
    result: LoadResult, checks: Sequence[ThresholdResult] = (), *, endpoint: str | None = None
) -> ReportSection:
    """A section for ``harness load``: rates, lateness, thresholds, corrected and raw latency
    per operation, throughput (target, sent, completed) and latency over time."""
    total = result.total.stats
    facts = {
        "scenario": result.scenario,
        **({"endpoint": endpoint} if endpoint else {}),
        "target": result.profile.describe(),
        "achieved rate": (
            f"{result.achieved_rate:.1f}/s of {result.target_rate:.1f}/s ({result.rate_ratio:.1%})"
        ),
        "requests": f"{result.sent} sent of {result.scheduled} scheduled, {total.calls} completed",
        "errors": f"{total.failures} ({total.failures / total.calls:.2%})" if total.calls else "0",
        "late starts": (
            f"{result.late_starts} sent > {result.late_after * 1000:g} ms late "
            f"(max {result.lateness.max * 1000:.1f} ms)"
        ),
        "client": (
            f"{result.workers} worker(s), {result.connections} connections each, "
            f"max {result.max_in_flight} in flight"
        ),
        "elapsed": f"{result.elapsed:.2f} s",
    }
    tables = []
    if checks:
        tables.append(
            ReportTable(
                "Thresholds",
                ["threshold", "result", "verdict"],
                [[c.threshold.text, c.detail(), "pass" if c.ok else "FAIL"] for c in checks],
                ["ok" if c.ok else "fail" for c in checks],
            )
        )
    rows: list[list[str]] = []
    errors: list[list[str]] = []
    for name in result.names:
        stats = result.operations[name].stats
        counts = (stats.calls, stats.successes, stats.failures, stats.throttles, stats.retries)
        rows.append([name, *map(str, counts), f"{stats.rate():.1f}"])
        errors.extend([name, code, str(n)] for code, n in sorted(stats.errors.items()))
    headers = ["operation", "calls", "ok", "failed", "throttles", "retries", "sent/s"]
    tables.append(ReportTable("Operations", headers, rows))
    if errors:
        tables.append(ReportTable("Errors by code", ["operation", "error", "calls"], errors))
    operations = [
        OperationLatency(
            name,
            {"corrected": op.corrected, "raw": op.stats.call_latency},
            {"corrected": op.corrected_timeline, "raw": op.raw_timeline},
            dashed=frozenset({"raw"}),
        )
        for name, op in sorted(result.operations.items())
    ]
    seconds = range(max(1, int(result.profile.duration + 0.999)))
    profile = result.profile
    throughput = {
        "target": [(s + 0.5, profile.count_by(s + 1) - profile.count_by(s)) for s in seconds],
        "sent": [(_mid(p), p.rate) for p in result.sends.points()],
        "completed": [(_mid(p), p.rate) for p in result.total.corrected_timeline.points()],
    }
    return ReportSection(
        f"Load: {result.scenario}",
        facts=facts,
        notes=result.warnings(),
        tables=tables,
        operations=operations,
        throughput=throughput,
    )
