"""The embedded emulator: ``harness emulator`` in a child process for the length of a command.

The child never outlives its parent, whatever ends the parent (a clean exit, SIGTERM, SIGKILL, a
crash): it runs with ``--exit-with-parent``, which asks Linux for SIGTERM when the parent dies
(``prctl(PR_SET_PDEATHSIG)``) and, on any system, watches its stdin, a pipe whose other end only
the parent holds: end of file means the parent is gone. Either way the child stops as on SIGTERM
(saving its state when it has a state directory). It runs in its own session, so that a Ctrl-C
at the terminal reaches the parent alone: the parent lets its calls in flight finish before it
stops the emulator.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["embedded_emulator", "follow_parent"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Seconds the child gets to save its state and exit after SIGTERM.
_STOP_TIMEOUT = 60.0


def _supports_state_dir() -> bool:
    from harness.cli._emulator import emulator

    return any(param.name == "state_dir" for param in emulator.params)


@contextlib.contextmanager
def embedded_emulator(throttle: str = "off", *, state_dir: Path | None = None) -> Iterator[str]:
    """Start ``harness emulator`` in a child process on a free loopback port; yield its URL.

    A separate process gives the emulator its own core: the engine and the emulator do not
    share one event loop and one GIL.

    :param state_dir: the emulator loads its state from there and saves it there when it stops
        (so that ``harness run --resume`` continues against the same resources)
    """
    command = [sys.executable, "-m", "harness", "emulator", "--port", "0"]
    command += ["--throttle", throttle, "--exit-with-parent"]
    if state_dir is not None and _supports_state_dir():
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        command += ["--state-dir", str(state_dir)]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
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
            proc.communicate(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def follow_parent() -> None:
    """Make this process stop (by SIGTERM to itself) when its parent goes away.

    Called by ``harness emulator --exit-with-parent``, the embedded emulator's child side. The
    parent-death signal is Linux's (it fires when the thread that spawned the child ends: the
    commands spawn it from their main thread); the stdin watch works everywhere, and also covers
    a parent that died before the signal was asked for.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()
