"""The model-driven emulator of the seed services: one HTTP endpoint for any SDK.

Start it from the command line (``harness emulator``), in-process (:class:`Emulator` in a running
event loop, :class:`EmulatorThread` for synchronous code) or as a pytest fixture
(``pytest_plugins = ["harness.emulator.pytest_plugin"]``).

This package imports only :mod:`harness.model` and the base modules.
"""

from __future__ import annotations

from harness.emulator._core import DEFAULT_ACCOUNT, EmulatorCore
from harness.emulator._http import Limits
from harness.emulator._server import ADMIN_HEADER, Emulator, EmulatorThread, serve
from harness.emulator._settings import EmulatorSettings, parse_latency

__all__ = [
    "ADMIN_HEADER",
    "DEFAULT_ACCOUNT",
    "Emulator",
    "EmulatorCore",
    "EmulatorSettings",
    "EmulatorThread",
    "Limits",
    "parse_latency",
    "serve",
]
