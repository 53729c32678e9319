"""The journal: an append-only JSONL file of item outcomes, so that a run can resume.

Every finished item is one line, written with a single ``os.write`` on an ``O_APPEND`` descriptor
as soon as the item is done. The data is then in the kernel's page cache: a SIGKILL of the process
at any moment loses at most the items in flight, and a torn last line (killed mid-write) is
ignored on reading. ``--resume`` skips the items the journal records as ``ok`` and retries the
rest; creates are idempotent (derived client tokens, name-keyed creates), so an item that was in
flight when the process died is not created twice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from harness.errors import JobError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Journal", "JournalState", "read_journal"]

_VERSION = 1


@dataclass(slots=True)
class JournalState:
    """What a journal says is done: per step, the keys finished ``ok`` and their outputs.

    Outputs are kept only for steps that feed other steps (``keep_outputs``), so that resuming a
    run whose downstream steps were not finished can hand them the same items again.
    """

    job: str | None = None
    done: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    lines: int = 0
    torn: int = 0

    def is_done(self, step: str, key: str) -> bool:
        """True when the journal records ``key`` of ``step`` as finished ok."""
        keys = self.done.get(step)
        return keys is not None and key in keys

    def output(self, step: str, key: str) -> dict[str, Any] | None:
        """The recorded output of a done item (when it was kept)."""
        return self.done.get(step, {}).get(key)

    @property
    def total_done(self) -> int:
        """Items recorded ok, all steps together."""
        return sum(len(keys) for keys in self.done.values())


def read_journal(path: Path, keep_outputs: frozenset[str] = frozenset()) -> JournalState:
    """Read a journal, tolerating a torn last line.

    :param keep_outputs: steps whose outputs should be kept in memory
    :raises JobError: when the file is not a harness journal
    """
    state = JournalState()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise JobError(f"cannot read journal {str(path)!r}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                entry = None
            if number == 1:
                # Checked even when the first line does not parse: any other file is refused.
                if not isinstance(entry, dict) or entry.get("journal") != _VERSION:
                    raise JobError(f"{path} is not a harness journal (no header line)")
                state.job = entry.get("job")
                continue
            if not isinstance(entry, dict):
                state.torn += 1
                continue
            state.lines += 1
            step, key, status = entry.get("step"), entry.get("key"), entry.get("status")
            if not isinstance(step, str) or not isinstance(key, str):
                state.torn += 1
                continue
            if status == "ok":
                state.done.setdefault(step, {})[key] = (
                    entry.get("output") if step in keep_outputs else None
                )
            elif status == "failed":
                state.failed[step] = state.failed.get(step, 0) + 1
    return state


class Journal:
    """Appends item outcomes to a journal file.

    :param path: the journal file; created with a header line when new
    :param job: the job name, recorded in the header and checked on resume
    """

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, job: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if new:
            header = {"journal": _VERSION, "job": job, "created": time.time()}
            os.write(self._fd, orjson.dumps(header) + b"\n")
        else:
            # A torn last line from a killed run must not swallow our first entry.
            with path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def record(
        self,
        step: str,
        key: str,
        status: str,
        *,
        attempts: int,
        latency: float,
        output: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_message: str = "",
    ) -> None:
        """Append one outcome (one ``write`` system call)."""
        entry: dict[str, Any] = {
            "step": step,
            "key": key,
            "status": status,
            "attempts": attempts,
            "latency_ms": round(latency * 1000, 3),
        }
        if output:
            entry["output"] = output
        if error_code:
            entry["error"] = {"code": error_code, "message": error_message[:500]}
        os.write(self._fd, orjson.dumps(entry, default=str) + b"\n")

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
