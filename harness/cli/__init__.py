"""The command line: a thin adapter from arguments to the layers below."""

from __future__ import annotations

from harness.cli._main import cli, main

__all__ = ["cli", "main"]
