"""Event consumers: the console reporter, the JSON summary and the HTML report."""

from __future__ import annotations

from harness.reporting._console import ConsoleReporter, summary_table
from harness.reporting._html import (
    OperationLatency,
    ReportSection,
    ReportTable,
    load_section,
    render_html_report,
    stats_section,
    write_html_report,
)
from harness.reporting._json import write_json

__all__ = [
    "ConsoleReporter",
    "OperationLatency",
    "ReportSection",
    "ReportTable",
    "load_section",
    "render_html_report",
    "stats_section",
    "summary_table",
    "write_html_report",
    "write_json",
]
