"""Event consumers: the console reporter and the JSON summary."""

from __future__ import annotations

from harness.reporting._console import ConsoleReporter, summary_table
from harness.reporting._json import write_json

__all__ = ["ConsoleReporter", "summary_table", "write_json"]
