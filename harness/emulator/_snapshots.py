"""Where the emulator keeps its state: the state directory, periodic saves, named snapshots.

Layout of a state directory (created 0700; every file 0600)::

    DIR/emulator.state          the state, saved on shutdown and periodically while it changes
    DIR/emulator.lock           held (flock) while an emulator uses DIR
    DIR/snapshots/NAME.snapshot named snapshots (POST /_harness/snapshot)

Without a state directory nothing is saved and named snapshots are kept in memory, for the life
of the process. Every file is written by :func:`~harness.emulator._persist.write_atomic`, so a
crash at any moment leaves the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson

from harness.emulator._persist import encode, load_into, parse_header, write_atomic
from harness.errors import InvalidArgument, StateFileError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from harness.emulator._core import EmulatorCore, Response

__all__ = ["SNAPSHOT_ACTIONS", "STATE_FILE", "StateStore", "check_snapshot_name"]

STATE_FILE = "emulator.state"
LOCK_FILE = "emulator.lock"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_SUFFIX = ".snapshot"
#: The admin actions (``/_harness/<action>``) a :class:`StateStore` answers.
SNAPSHOT_ACTIONS = frozenset({"snapshot", "restore", "snapshots"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_JSON = {"Content-Type": "application/json"}


def check_snapshot_name(name: Any) -> str:
    """``name`` if it can name a snapshot: 1-64 of ``A-Z a-z 0-9 _ . -``, not starting with
    ``.``, ``_`` or ``-`` (so never a path, a hidden file or an option).

    :raises InvalidArgument: otherwise
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"snapshot name {name!r}: expected 1-64 characters of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit"
        )
    return name


class StateStore:
    """Saves and loads one emulator core's state; answers the snapshot admin endpoints.

    :param state_dir: the directory to keep the state in (``None``: memory only)
    :param interval: seconds between periodic saves while the state changes (0: only on
        shutdown)
    :param pinned_settings: settings that keep the running value when a saved state is loaded
        at start (the others take the saved value)
    :param log: called with one line when a periodic save fails (it is retried next time)
    """

    def __init__(
        self,
        core: EmulatorCore,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        interval: float = 30.0,
        pinned_settings: Collection[str] = (),
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(interval, int | float) or not math.isfinite(interval) or interval < 0:
            raise InvalidArgument(
                f"snapshot interval {interval!r}: expected a finite number of seconds >= 0"
            )
        self.core = core
        self.dir = Path(state_dir) if state_dir is not None else None
        self.interval = float(interval)
        self.pinned_settings = frozenset(pinned_settings)
        self.log = log
        #: the header of the state loaded at start (``None``: started empty)
        self.loaded: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.saves = 0
        self._memory: dict[str, bytes] = {}
        self._saved: tuple[int, int] | None = None
        self._lock: int | None = None

    @property
    def state_path(self) -> Path | None:
        """The state file (``None`` without a state directory)."""
        return self.dir / STATE_FILE if self.dir is not None else None

    @property
    def autosaves(self) -> bool:
        """Whether :meth:`autosave` has anything to do."""
        return self.dir is not None and self.interval > 0

    @property
    def dirty(self) -> bool:
        """Whether the state may have changed since it was last loaded or saved."""
        return self.core.revision != self._saved

    # -------------------------------------------------------------------------- lifecycle
    def open(self) -> None:
        """Create and lock the state directory, and load its state file when there is one.

        :raises StateFileError: the directory cannot be created or written, another emulator
            uses it, or its state file is unreadable, corrupt or of an unknown format
        """
        if self.dir is None or self._lock is not None:
            return
        self._lock = self._acquire(self.dir)
        try:
            self._remove_stale_temporaries()
            path = self.dir / STATE_FILE
            if path.exists():
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise StateFileError(f"{path}: cannot read: {exc.strerror}") from None
                self.loaded = load_into(
                    self.core, data, str(path), settings=True, pinned=self.pinned_settings
                )
                del data
                self._saved = self.core.revision
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """Save the state (when it changed or was never saved) and unlock the directory.

        :raises StateFileError: when the state cannot be written (the directory is unlocked
            all the same)
        """
        if self._lock is None:
            return
        try:
            path = self.state_path
            if path is not None and (self.dirty or not path.exists()):
                self.save()
        finally:
            self._release()

    def save(self) -> None:
        """Write the state file now (on the calling thread).

        :raises StateFileError: when it cannot be written
        """
        path = self.state_path
        if path is None:
            return
        revision = self.core.revision
        header, payload = encode(self.core)
        try:
            write_atomic(path, header, payload)
        except OSError as exc:
            raise StateFileError(
                f"{path}: cannot save the emulator state: {exc.strerror}"
            ) from None
        self._saved = revision
        self.saves += 1

    async def autosave(self) -> None:
        """Save every ``interval`` seconds while the state changes, until cancelled.

        Where the system can fork, a child process (a copy-on-write view of the state at that
        instant) serializes and writes the file, as Redis's BGSAVE does, so that no request
        waits for a save however large the state; elsewhere it is serialized on the event loop
        and written on a worker thread. A failed save is logged and retried.
        """
        path = self.state_path
        if path is None or self.interval <= 0:
            return
        while True:
            await anyio.sleep(self.interval)
            if not self.dirty:
                continue
            revision = self.core.revision
            try:
                # Not abandoned on cancellation: a shutdown waits for the write to finish, so
                # that its own final save is the last rename.
                if hasattr(os, "fork"):
                    await _save_in_child(self.core, path)
                else:
                    header, payload = encode(self.core)
                    await anyio.to_thread.run_sync(write_atomic, path, header, payload)
            except OSError as exc:
                self.last_error = f"{path}: cannot save the emulator state: {exc.strerror}"
                if self.log is not None:
                    self.log(self.last_error)
                continue
            self._saved = revision
            self.saves += 1
            self.last_error = None

    # ------------------------------------------------------------------------ snapshots
    def snapshot(self, name: str) -> dict[str, Any]:
        """Save the whole state as the named snapshot (replacing one of that name).

        :raises InvalidArgument: for a name that is not safe
        :raises StateFileError: when it cannot be written
        """
        check_snapshot_name(name)
        header, payload = encode(self.core)
        if self.dir is None:
            self._memory[name] = header + payload
            where = "memory"
        else:
            folder = self.dir / SNAPSHOT_DIR
            path = folder / f"{name}{SNAPSHOT_SUFFIX}"
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
                write_atomic(path, header, payload)
            except OSError as exc:
                raise StateFileError(f"{path}: cannot save the snapshot: {exc.strerror}") from None
            where = str(path)
        info = orjson.loads(header.splitlines()[1])
        return {"name": name, "where": where, "bytes": len(header) + len(payload), **info}

    def restore(self, name: str) -> dict[str, Any]:
        """Replace the whole state by the named snapshot's (the running settings stay).

        :raises InvalidArgument: for a name that is not safe
        :raises LookupError: when there is no snapshot of that name
        :raises StateFileError: when it is unreadable, corrupt or of an unknown format (the
            state is then left as it was)
        """
        check_snapshot_name(name)
        if self.dir is None:
            data = self._memory.get(name)
            source = f"snapshot {name!r}"
        else:
            path = self.dir / SNAPSHOT_DIR / f"{name}{SNAPSHOT_SUFFIX}"
            source = str(path)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            except OSError as exc:
                raise StateFileError(f"{path}: cannot read: {exc.strerror}") from None
        if data is None:
            raise LookupError(f"no snapshot named {name!r}")
        header = load_into(self.core, data, source, settings=False)
        return {"name": name, "restored": True, **header}

    def snapshots(self) -> list[dict[str, Any]]:
        """Every named snapshot's header (or the reason it cannot be read), by name."""
        found: dict[str, bytes | Path] = dict(self._memory)
        if self.dir is not None:
            folder = self.dir / SNAPSHOT_DIR
            with contextlib.suppress(OSError):
                for path in folder.glob(f"*{SNAPSHOT_SUFFIX}"):
                    if _NAME.fullmatch(path.stem):
                        found[path.stem] = path
        listing = []
        for name, where in sorted(found.items()):
            try:
                if isinstance(where, Path):
                    with where.open("rb") as src:
                        head = src.read(64 * 1024)
                    size = where.stat().st_size
                else:
                    head, size = where[: 64 * 1024], len(where)
                info = parse_header(head, name)[0]
                listing.append({"name": name, "bytes": size, **info})
            except (OSError, StateFileError) as exc:
                listing.append({"name": name, "error": str(exc)})
        return listing

    def admin(self, method: str, action: str, body: bytes) -> Response:
        """Answer ``POST /_harness/snapshot``, ``POST /_harness/restore`` (body
        ``{"name": NAME}``) and ``GET /_harness/snapshots``."""
        if (method, action) == ("GET", "snapshots"):
            return _json(
                200,
                {
                    "state_dir": str(self.dir) if self.dir is not None else None,
                    "snapshot_interval_s": self.interval,
                    "saves": self.saves,
                    "last_error": self.last_error,
                    "snapshots": self.snapshots(),
                },
            )
        if method != "POST" or action not in ("snapshot", "restore"):
            return _json(405, {"message": f"{method} /_harness/{action} is not supported"})
        try:
            request = orjson.loads(body or b"{}")
            if not isinstance(request, dict):
                raise InvalidArgument('expected a JSON object: {"name": NAME}')
            name = check_snapshot_name(request.get("name"))
            done = self.snapshot(name) if action == "snapshot" else self.restore(name)
        except orjson.JSONDecodeError as exc:
            return _json(400, {"message": f"the body is not JSON: {exc}"})
        except InvalidArgument as exc:
            return _json(400, {"message": str(exc)})
        except LookupError as exc:
            return _json(404, {"message": str(exc.args[0])})
        except StateFileError as exc:
            return _json(422 if action == "restore" else 500, {"message": str(exc)})
        return _json(200, done)

    # ---------------------------------------------------------------------------- helpers
    @staticmethod
    def _acquire(folder: Path) -> int:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            raise StateFileError(f"--state-dir {folder}: exists and is not a directory") from None
        except OSError as exc:
            raise StateFileError(
                f"--state-dir {folder}: cannot create it: {exc.strerror}"
            ) from None
        lock = folder / LOCK_FILE
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError(
                f"--state-dir {folder}: cannot write in it: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateFileError(
                f"--state-dir {folder}: in use by another emulator (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def _remove_stale_temporaries(self) -> None:
        # A save killed before its rename leaves its temporary file; nothing else reads them.
        assert self.dir is not None
        for folder in (self.dir, self.dir / SNAPSHOT_DIR):
            with contextlib.suppress(OSError):
                for path in folder.glob(".*.tmp"):
                    with contextlib.suppress(OSError):
                        path.unlink()


async def _save_in_child(core: EmulatorCore, path: Path) -> None:
    """Fork; the child writes the state file and exits; wait for it on a worker thread.

    The child runs no event loop and touches only the state (copied on write) and the file; it
    reports a failure as ``errno`` and message on a pipe.

    :raises OSError: the child's error, or the fork's
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read_end)
            header, payload = encode(core)
            write_atomic(path, header, payload)
        except OSError as exc:
            os.write(write_end, f"{exc.errno or 0} {exc.strerror or exc}".encode()[:512])
            code = 1
        except BaseException as exc:  # reported: the parent cannot see it otherwise
            os.write(write_end, f"0 {type(exc).__name__}: {exc}".encode()[:512])
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)

    def wait() -> tuple[int, bytes]:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status), os.read(read_end, 512)
        finally:
            os.close(read_end)

    code, message = await anyio.to_thread.run_sync(wait)
    if code != 0:
        number, _, text = message.decode(errors="replace").partition(" ")
        raise OSError(int(number) if number.isdigit() else 0, text or f"exit status {code}")


def _json(status: int, data: Any) -> Response:
    return status, dict(_JSON), orjson.dumps(data)
