"""The journal: an append-only JSONL file of item outcomes, so that a run can resume.

Every finished item is one line, written with a single ``os.write`` on an ``O_APPEND`` descriptor
as soon as the item is done. The data is then in the kernel's page cache: a SIGKILL of the process
at any moment loses at most the items in flight, and a torn line (killed mid-write, the header
line included) is skipped on reading. ``--resume`` skips the items the journal records as ``ok``
and retries the rest; creates are idempotent (derived client tokens, name-keyed creates), so an
item that was in flight when the process died is not created twice.

A journal is held under an exclusive ``flock`` while a run writes it: a second run on the same
file is refused at once. A write that fails (disk full, file size limit, I/O error) is cut back
to the last whole line and raises :class:`~harness.errors.JournalError`; the engine then stops
the run. Journals are created ``0600``: they hold the ids and outputs of the service.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from harness.errors import JobError, JournalError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Journal", "JournalState", "read_journal"]

_VERSION = 1
_HEADER_START = b'{"journal":'


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


def _torn_header(line: bytes) -> bool:
    """True for what a header line cut short (or zeroed by a crash) can look like."""
    text = line.rstrip(b"\n")
    return text.startswith(_HEADER_START) or _HEADER_START.startswith(text) or not text.strip(b"\0")


def read_journal(path: Path, keep_outputs: frozenset[str] = frozenset()) -> JournalState:
    """Read a journal, skipping torn lines (a torn header line too: the job is then unknown).

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
                if isinstance(entry, dict) and entry.get("journal") == _VERSION:
                    state.job = entry.get("job")
                    continue
                # A torn header is recovered; any other first line means another kind of file.
                if entry is not None or not _torn_header(line):
                    raise JobError(f"{path} is not a harness journal (no header line)")
                state.torn += 1
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
    """Appends item outcomes to a journal file, which it holds locked until :meth:`close`.

    :param path: the journal file; created (``0600``) with a header line when new
    :param job: the job name, recorded in the header and checked on resume
    :raises JournalError: when another process holds the journal, or it cannot be opened
    """

    __slots__ = ("_created", "_entries", "_fd", "_size", "_torn_tail", "path")

    def __init__(self, path: Path, job: str) -> None:
        self.path = path
        self._entries = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._created = not path.exists()
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open journal {path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = -1
            raise JournalError(
                f"journal {path} is in use by another harness run (it holds the lock); "
                "wait for that run to end, or pass another --journal"
            ) from None
        try:
            self._size = os.fstat(self._fd).st_size
            # A torn last line from a killed run must not swallow our first entry; the newline
            # goes with that entry, so that a file refused by read_journal is left untouched.
            self._torn_tail = bool(self._size) and os.pread(self._fd, 1, self._size - 1) != b"\n"
            if self._size == 0:
                header = {"journal": _VERSION, "job": job, "created": time.time()}
                self._append(orjson.dumps(header) + b"\n")
        except (JournalError, OSError) as exc:
            self.close()
            if isinstance(exc, JournalError):
                raise
            raise JournalError(f"cannot read journal {path}: {exc.strerror}") from None

    def _append(self, data: bytes) -> None:
        """One ``write``; a short or failed one is cut back so that no torn line stays."""
        written = 0
        try:
            # After a short write the rest is written again: that fails and says why (ENOSPC,
            # EFBIG...), or it succeeds.
            while written < len(data):
                n = os.write(self._fd, data[written:] if written else data)
                if not n:
                    raise OSError(0, f"short write ({written} of {len(data)} bytes)")
                written += n
        except OSError as exc:
            reason = exc.strerror or str(exc)
        else:
            self._size += written
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)
        raise JournalError(
            f"cannot write journal {self.path}: {reason}; the entries written before are intact"
        )

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
        """Append one outcome (one ``write`` system call).

        :raises JournalError: when the write fails (nothing of the entry stays in the file)
        """
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
        line = orjson.dumps(entry, default=str) + b"\n"
        if self._torn_tail:
            line = b"\n" + line
        self._append(line)
        self._torn_tail = False
        self._entries += 1

    def discard(self) -> None:
        """Close, and remove the file if this journal created it and recorded nothing (a run
        refused before it sent anything leaves no journal behind)."""
        if self._created and not self._entries and self._fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.close()

    def close(self) -> None:
        """Close the file (which releases the lock)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
