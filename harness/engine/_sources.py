"""Rows of ``csv`` and ``jsonl`` item sources, read in bounded memory.

A file iterator reads a whole line before it returns it, so one 10 GB line without a newline
would be read into memory whole; these readers take at most ``Limits.line_bytes`` (plus one
byte) at a time and refuse a longer line, naming the file, the line and the limit.
"""

from __future__ import annotations

import csv
from typing import IO, TYPE_CHECKING, Any

import orjson

from harness.engine._limits import Limits, TooLarge, measure

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["ItemError", "read_csv", "read_jsonl"]


class ItemError(ValueError):
    """A row of an item source is invalid or beyond a limit; the message names file and line."""


class _Lines:
    """The lines of a binary file, each at most ``limits.line_bytes`` long."""

    def __init__(self, handle: IO[bytes], path: Path, limits: Limits) -> None:
        self.handle, self.path, self.limits = handle, path, limits
        self.number = 0
        self.row_bytes = 0  # bytes of the row in progress (a CSV row may span lines)

    def __iter__(self) -> Iterator[bytes]:
        limit = self.limits.line_bytes
        while line := self.handle.readline(limit + 1):
            self.number += 1
            self.row_bytes += len(line)
            # limit + 1 bytes and no newline among them: the line goes on beyond the limit.
            if (len(line) > limit and not line.endswith(b"\n")) or self.row_bytes > limit + 1:
                raise ItemError(
                    f"{self.path}:{self.number}: the line is longer than "
                    f"{self.limits.exceeded('line_bytes')}"
                )
            yield line


def read_csv(path: Path, limits: Limits) -> Iterator[dict[str, Any]]:
    """The rows of a CSV file with a header line, as mappings.

    :raises ItemError: for a line (or a quoted row spanning lines) beyond ``limits.line_bytes``
    :raises csv.Error: for a malformed file; :class:`UnicodeDecodeError` for one not UTF-8
    """
    with path.open("rb") as handle:
        lines = _Lines(handle, path, limits)
        reader = csv.DictReader(line.decode() for line in lines)
        _ = reader.fieldnames  # reads the header line, which does not count against a row
        lines.row_bytes = 0
        for row in reader:
            lines.row_bytes = 0
            yield row


def read_jsonl(path: Path, limits: Limits) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file (blank lines skipped).

    :raises ItemError: for a line that is too long, nested too deeply, not JSON or not an object
    """
    with path.open("rb") as handle:
        lines = _Lines(handle, path, limits)
        for line in lines:
            lines.row_bytes = 0
            if not line.strip():
                continue
            where = f"{path}:{lines.number}"
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if "depth limit" in str(exc):  # orjson's own bound: 1,024 levels
                    raise ItemError(
                        f"{where}: nests deeper than {limits.exceeded('depth')}"
                    ) from None
                raise ItemError(f"{where}: invalid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise ItemError(f"{where}: not a JSON object")
            try:
                measure(row, limits.line_bytes, limits.depth, text=False)
            except TooLarge:
                raise ItemError(f"{where}: nests deeper than {limits.exceeded('depth')}") from None
            yield row
