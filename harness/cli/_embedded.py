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
import time
from collections import deque
from typing import TYPE_CHECKING

import click

from harness.errors import HarnessError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["embedded_emulator", "follow_parent"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Seconds the child gets to save its state and exit after SIGTERM.
_STOP_TIMEOUT = 60.0


#: Lines of the child's stderr kept for the message when it fails.
_STDERR_LINES = 20
#: Seconds to wait for the emulator of a killed run to save and release the state directory.
_STATE_BUSY_TIMEOUT = 30.0


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
    if state_dir is not None:
        command += ["--state-dir", str(state_dir)]
    deadline = time.monotonic() + _STATE_BUSY_TIMEOUT
    while True:
        proc, url, error = _start(command)
        # The emulator of a run just killed may still be saving the state: it ends soon.
        if url or "in use by another emulator" not in error or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not url:
        raise HarnessError(f"the embedded emulator did not start: {error}")
    # Drained while the run goes on: a child writing warnings into a full pipe would block.
    tail: deque[str] = deque(maxlen=_STDERR_LINES)
    drain = threading.Thread(target=_drain, args=(proc, tail), name="harness-emulator-stderr")
    drain.daemon = True
    drain.start()
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        drain.join(timeout=5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        err = "".join(tail)
        if proc.returncode and err.strip():
            # Say so when the state could not be saved: a resumed run would miss it.
            click.echo(f"warning: the embedded emulator: {err.strip()}", err=True)


def _drain(proc: subprocess.Popen[str], tail: deque[str]) -> None:
    """Read the child's stderr until it closes, keeping the last lines."""
    assert proc.stderr is not None
    with contextlib.suppress(OSError, ValueError):
        for line in proc.stderr:
            tail.append(line)
    proc.stderr.close()


def _start(command: list[str]) -> tuple[subprocess.Popen[str], str, str]:
    """Start the child; ``(process, URL, "")`` once it listens, or ``(process, "", error)``."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line.startswith("listening on "):
        return proc, line.removeprefix("listening on "), ""
    _, err = proc.communicate()
    return proc, "", line or err.strip()


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
