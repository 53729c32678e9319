"""The emulator's saved state: one versioned file per snapshot, written atomically.

A state file is two header lines and a payload::

    HARNESS-EMULATOR-STATE
    {"format": 1, "harness": "0.1.0", "layout": "9f2c...", "payload_bytes": N, ...}
    <N bytes: a pickle of plain data>

``format`` is the version of this container; ``layout`` a digest of the field names of every
state class and record the payload is made of, so that a file written by a harness whose state
classes differ is refused instead of loaded wrongly. The payload is the state as plain data
(tuples, lists, dicts, strings, numbers, bytes, datetimes): each state class turns itself into
that with ``dump()`` and back with ``restore()``, objects referring to one another by key. It is
read with an unpickler that admits no class but the datetime ones, so a file cannot make the
loader run code, and only after its length and BLAKE2b digest match the header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import importlib
import io
import os
import pickle
import pkgutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import orjson

from harness.emulator import services as _services
from harness.emulator._core import _OpStats
from harness.emulator._generic import GenericState
from harness.emulator._state import IdempotencyCache, IdempotencyEntry, Table, TokenCodec
from harness.errors import InvalidArgument, StateFileError

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    from harness.emulator._core import EmulatorCore

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "encode",
    "harness_version",
    "layout_digest",
    "load_into",
    "read_header",
    "write_atomic",
]

#: The version of the container format; a file with another one is refused.
FORMAT_VERSION = 1
MAGIC = b"HARNESS-EMULATOR-STATE\n"
_HEADER_MAX = 64 * 1024
# The only classes a payload may name: timestamps parsed from headers are datetimes.
_ALLOWED_CLASSES = frozenset(
    ("datetime", name) for name in ("datetime", "date", "time", "timedelta", "timezone")
)


@cache
def harness_version() -> str:
    """The installed harness version (written into every header)."""
    try:
        return version("harness")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0"


@cache
def layout_digest() -> str:
    """A digest of the field names of every state class and record a payload is made of.

    It changes when a class gains, loses or reorders a field: records are saved as tuples.
    """
    parts: list[str] = [f"Table:{','.join(Table.__slots__)}"]
    for info in pkgutil.iter_modules(_services.__path__):
        module = importlib.import_module(f"{_services.__name__}.{info.name}")
        for name, obj in sorted(vars(module).items()):
            if not isinstance(obj, type) or obj.__module__ != module.__name__:
                continue
            if dataclasses.is_dataclass(obj):
                parts.append(f"{name}:{','.join(f.name for f in dataclasses.fields(obj))}")
            elif issubclass(obj, GenericState) or hasattr(obj, "dump"):
                parts.append(f"{name}:{','.join(sorted(_attributes(obj)))}")
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()


def _attributes(cls: type) -> set[str]:
    """The attributes a fresh instance of a state class has (slots and instance dict)."""
    instance = cls()
    names = set(getattr(instance, "__dict__", {}))
    for klass in cls.__mro__:
        names.update(getattr(klass, "__slots__", ()))
    return names


# ------------------------------------------------------------------------------------- saving
def encode(core: EmulatorCore) -> tuple[bytes, bytes]:
    """The state of ``core`` as a file: ``(header, payload)``, to write one after the other.

    Runs on the emulator's loop (the state must not change while it is read); costs about a
    second per million resources.
    """
    with _gc_paused():
        payload_data = _capture(core)
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=5)
        # Fast mode (no memo) pickles plain data about 3x faster and loads it 2x faster. Plain
        # data has no shared or cyclic parts; a cycle would fail here, not produce a bad file.
        pickler.fast = True
        pickler.dump(payload_data)
        payload = buffer.getvalue()
    resources: dict[str, Counter[str]] = defaultdict(Counter)
    for (_, _, service), state in core._states.items():
        resources[service].update(state.counts())
    header = {
        "format": FORMAT_VERSION,
        "harness": harness_version(),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "layout": layout_digest(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resources": {svc: dict(c) for svc, c in sorted(resources.items())},
        "payload": "pickle-5-plain",
        "payload_bytes": len(payload),
        "payload_blake2b": hashlib.blake2b(payload, digest_size=32).hexdigest(),
    }
    return MAGIC + orjson.dumps(header) + b"\n", payload


def _capture(core: EmulatorCore) -> dict[str, Any]:
    # The core's own attributes are read here rather than through accessors: this module is
    # the one place that knows the whole state, and _core.py stays about requests.
    wall, mono = time.time(), time.monotonic()
    return {
        "states": [(a, r, s, state.dump()) for (a, r, s), state in core._states.items()],
        # Completed requests only: one in flight has no answer to replay, and its retry after
        # a restart must run again (AWS keeps no half-done request either).
        "idempotency": [
            (key, entry.digest, wall - (mono - entry.created), entry.response)
            for key, entry in core.idempotency.items()
            if entry.response is not None
        ],
        "token_secret": core.tokens.secret,
        "stats": [
            (key, s.requests, s.throttles, s.faults, s.replays, dict(s.errors))
            for key, s in core._stats.items()
        ],
        "requests": core._requests,
        "conformance_failures": list(core.conformance_failures),
        "settings": core.settings.to_json(),
    }


def write_atomic(path: Path, *chunks: bytes) -> None:
    """Write ``chunks`` to ``path`` so that a crash at any moment leaves the old or the new file.

    A temporary file in the same directory (created 0600) is written and fsynced, renamed over
    ``path``, and the directory fsynced so that the rename itself survives a power loss.

    :raises OSError: when the directory cannot be written (the old file is then untouched)
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ------------------------------------------------------------------------------------ loading
class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only: every class but the datetime ones is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a state never holds")


def parse_header(data: bytes, source: str) -> tuple[dict[str, Any], int]:
    """The header of a state file and the offset its payload starts at.

    :raises StateFileError: when ``data`` is not a state file this harness can read
    """
    if not data.startswith(MAGIC):
        raise StateFileError(
            f"{source}: not an emulator state file (no {MAGIC[:-1].decode()} line)"
        )
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + _HEADER_MAX)
    try:
        if end < 0:
            raise ValueError("no end of line")
        header = orjson.loads(data[len(MAGIC) : end])
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise StateFileError(f"{source}: the state file's header is corrupt ({exc})") from None
    found = header.get("format")
    if found != FORMAT_VERSION:
        raise StateFileError(
            f"{source}: state format version {found!r} (written by harness "
            f"{header.get('harness', '?')}); this harness ({harness_version()}) reads only "
            f"version {FORMAT_VERSION}"
        )
    if header.get("layout") != layout_digest():
        raise StateFileError(
            f"{source}: written by harness {header.get('harness', '?')}, whose emulator state "
            f"classes differ from this harness's ({harness_version()}); it cannot be loaded "
            "(use another state directory or remove the file)"
        )
    return header, end + 1


def read_header(path: Path) -> dict[str, Any]:
    """The header of the state file at ``path`` (reads only its first lines).

    :raises StateFileError: when it cannot be read or is not a state file of this format
    """
    try:
        with path.open("rb") as src:
            head = src.read(len(MAGIC) + _HEADER_MAX)
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the state file: {exc.strerror}") from None
    return parse_header(head, str(path))[0]


def load_into(
    core: EmulatorCore,
    data: bytes,
    source: str,
    *,
    settings: bool,
    pinned: Collection[str] = (),
) -> dict[str, Any]:
    """Replace the whole state of ``core`` with the state file ``data``; return its header.

    Nothing changes unless the whole file loads: the new state is built aside, then swapped in.

    :param settings: also take the file's settings (those not in ``pinned``; ``seed`` never)
    :raises StateFileError: naming ``source`` and what is wrong with it
    """
    header, start = parse_header(data, source)
    payload = memoryview(data)[start:]
    if len(payload) != header.get("payload_bytes"):
        raise StateFileError(
            f"{source}: the state file is truncated or corrupt ({len(payload)} payload bytes, "
            f"the header says {header.get('payload_bytes')})"
        )
    if hashlib.blake2b(payload, digest_size=32).hexdigest() != header.get("payload_blake2b"):
        raise StateFileError(f"{source}: the state file is corrupt (its checksum does not match)")
    try:
        with _gc_paused():
            plain = _PlainUnpickler(io.BytesIO(payload)).load()
            prepared = _prepare(core, plain)
    except Exception as exc:  # any way a payload can be wrong: refuse the file, name why
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise StateFileError(f"{source}: the saved state is inconsistent ({reason})") from None
    if settings:
        _apply_settings(core, plain["settings"], pinned)
    _swap(core, prepared)
    return header


@dataclasses.dataclass(slots=True)
class _Prepared:
    """A loaded state, checked and built, ready to be swapped into the core."""

    states: dict[tuple[str, str, str], Any]
    idempotency: list[tuple[tuple[str, str, str, str], IdempotencyEntry, float]]
    tokens: TokenCodec
    stats: defaultdict[str, _OpStats]
    requests: int
    failures: list[str]


def _prepare(core: EmulatorCore, plain: dict[str, Any]) -> _Prepared:
    factories = core._state_types
    states: dict[tuple[str, str, str], Any] = {}
    for account, region, service, data in plain["states"]:
        state = factories.get(service, GenericState)()
        state.restore(data)
        states[(str(account), str(region), str(service))] = state
    entries = []
    for key, digest, saved_at, response in plain["idempotency"]:
        status, headers, body = response
        entry = IdempotencyEntry(bytes(digest), 0.0, (int(status), dict(headers), bytes(body)))
        entries.append((_token_key(key), entry, float(saved_at)))
    stats: defaultdict[str, _OpStats] = defaultdict(_OpStats)
    for key, requests, throttles, faults, replays, errors in plain["stats"]:
        stats[str(key)] = _OpStats(requests, throttles, faults, replays, Counter(errors))
    secret = plain["token_secret"]
    if not isinstance(secret, bytes) or len(secret) < 16:
        raise ValueError("the pagination token secret is missing")
    return _Prepared(
        states,
        entries,
        TokenCodec(secret),
        stats,
        int(plain["requests"]),
        [str(line) for line in plain["conformance_failures"]],
    )


def _token_key(key: Any) -> tuple[str, str, str, str]:
    account, region, operation, token = key
    return str(account), str(region), str(operation), str(token)


def _apply_settings(core: EmulatorCore, saved: dict[str, Any], pinned: Collection[str]) -> None:
    current = core.settings.to_json()
    for name, value in saved.items():
        if name == "seed" or name in pinned or name not in current or value == current[name]:
            continue
        # A value this version no longer accepts keeps the running one.
        with contextlib.suppress(InvalidArgument):
            core.configure({name: value})


def _swap(core: EmulatorCore, prepared: _Prepared) -> None:
    wall, mono = time.time(), time.monotonic()
    cache = IdempotencyCache(core.settings.idempotency_ttl)
    for key, entry, saved_at in prepared.idempotency:
        # Entries age across the restart: a token expires when it would have anyway.
        age = max(0.0, wall - saved_at)
        if age <= cache.ttl:
            entry.created = mono - age
            cache.put(key, entry)
    core._states = prepared.states
    core.idempotency = cache
    core.tokens = prepared.tokens
    core._stats = prepared.stats
    core._buckets.clear()  # throttle buckets start full, as after a reset
    core._requests = max(core._requests, prepared.requests)
    core.conformance_failures[:] = prepared.failures
    core.generation += 1


@contextlib.contextmanager
def _gc_paused() -> Any:
    # Building or reading a million small containers would run the cyclic collector over the
    # whole heap again and again; none of them is garbage until the state is dropped.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
