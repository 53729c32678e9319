"""The embedded emulator: ``harness emulator`` in a child process for the length of a command."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["embedded_emulator"]


@contextlib.contextmanager
def embedded_emulator(throttle: str = "off") -> Iterator[str]:
    """Start ``harness emulator`` in a child process on a free loopback port; yield its URL.

    A separate process gives the emulator its own core: the engine and the emulator do not
    share one event loop and one GIL.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulator", "--port", "0", "--throttle", throttle],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            err = proc.stderr.read() if proc.stderr else ""
            raise HarnessError(f"the embedded emulator did not start: {line or err.strip()}")
        yield line.removeprefix("listening on ")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
