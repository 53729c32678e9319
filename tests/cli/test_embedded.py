"""The embedded emulator's child process plumbing."""

from __future__ import annotations

import subprocess
import sys
from collections import deque

from harness.cli._embedded import _drain


def test_a_child_writing_more_than_a_pipe_holds_never_blocks() -> None:
    # 1 MiB is 16 times a Linux pipe buffer: without a reader the child would block in write().
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stderr.write('x' * 2**20 + '\\nlast words\\n')"],
        stderr=subprocess.PIPE,
        text=True,
    )
    tail: deque[str] = deque(maxlen=3)
    _drain(child, tail)
    assert child.wait(timeout=30) == 0
    assert tail[-1] == "last words\n"
    assert len(tail) == 2 and len(tail[0]) == 2**20 + 1
