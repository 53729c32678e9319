"""JSON output files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

__all__ = ["write_json"]


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a temporary file renamed into place)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str) + b"\n")
    os.replace(temporary, target)
