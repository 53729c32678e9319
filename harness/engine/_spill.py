"""Holding a step's input while it waits on ``after``, in bounded memory.

A step fed by another (``items: {from: A}``) that also waits on ``after: [C]`` cannot take its
items until C finishes, yet it must not block A meanwhile: A may feed C itself (A -> B after C,
C from A), and a blocked A would never let C finish. Its input is therefore relayed through a
:class:`SpillQueue`: the first items wait in memory, the rest in an unnamed temporary file, and
once the ``after`` steps have finished they are replayed in order. From then on the relay gives
back-pressure like any other channel.
"""

from __future__ import annotations

import pickle
import struct
import tempfile
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["SpillQueue", "relay"]

_HEADER = struct.Struct("<I")
_WRITE_BATCH = 256 * 1024
_READ_CHUNK = 256 * 1024


class SpillQueue:
    """A FIFO that keeps at most ``memory`` items in memory and the rest in a temporary file.

    The file is created on the first spill with :func:`tempfile.TemporaryFile` in ``directory``
    (the journal's, so that a large spill lands on the same disk, not on a RAM-backed /tmp): it
    is 0600 and has no name (or is unlinked at once), so nothing is left behind whatever ends
    the process. Its space is reused whenever the queue empties.

    Items are pickled: they are the process's own objects (mappings of JSON-like values, and
    the dates or bytes a YAML file may hold) and come back as they were, and the file is read
    only by the process that wrote it, through a descriptor nobody else holds.
    """

    def __init__(self, memory: int, directory: Path | None = None) -> None:
        self.memory = memory
        self.directory = directory
        self.spilled_total = 0  #: items that went to the file, over the queue's life
        self._head: deque[Any] = deque()
        self._file: Any = None
        self._pending: list[bytes] = []  # frames not written yet
        self._pending_bytes = 0
        self._in_file = 0  # items in the file (and pending) not read yet
        self._read_at = 0  # file offset of the next unread byte
        self._chunk = b""  # bytes read from the file, not consumed yet
        self._chunk_at = 0

    def __len__(self) -> int:
        return len(self._head) + self._in_file

    def push(self, item: Any) -> None:
        """Append ``item`` (to memory while it holds fewer than ``memory`` and nothing waits
        in the file; to the file otherwise, which keeps the order)."""
        if not self._in_file and len(self._head) < self.memory:
            self._head.append(item)
            return
        frame = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        self._pending.append(_HEADER.pack(len(frame)))
        self._pending.append(frame)
        self._pending_bytes += _HEADER.size + len(frame)
        self._in_file += 1
        self.spilled_total += 1
        if self._pending_bytes >= _WRITE_BATCH:
            self._flush()

    def pop(self) -> Any:
        """The oldest item. :raises IndexError: when the queue is empty"""
        if self._head:
            return self._head.popleft()
        if not self._in_file:
            raise IndexError("pop from an empty SpillQueue")
        size = _HEADER.unpack(self._take(_HEADER.size))[0]
        item = pickle.loads(self._take(size))
        self._in_file -= 1
        if not self._in_file:
            # Empty: start the file over, so a long run reuses the same space.
            self._file.seek(0)
            self._file.truncate()
            self._read_at = 0
            self._chunk, self._chunk_at = b"", 0
        return item

    def close(self) -> None:
        """Drop what is left and close (so delete) the file."""
        self._head.clear()
        self._pending.clear()
        self._in_file = 0
        if self._file is not None:
            self._file.close()
            self._file = None

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.directory, prefix=".harness-spill-")
        self._file.seek(0, 2)
        self._file.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_bytes = 0

    def _take(self, size: int) -> bytes:
        while len(self._chunk) - self._chunk_at < size:
            self._flush()
            self._file.seek(self._read_at)
            more = self._file.read(max(_READ_CHUNK, size))
            if not more:
                raise EOFError("the spill file ends early")
            self._read_at += len(more)
            self._chunk = self._chunk[self._chunk_at :] + more
            self._chunk_at = 0
        data = self._chunk[self._chunk_at : self._chunk_at + size]
        self._chunk_at += size
        return data


async def relay(
    receive: MemoryObjectReceiveStream[Any],
    send: MemoryObjectSendStream[Any],
    ready: Sequence[anyio.Event],
    queue: SpillQueue,
    failed: Callable[[OSError], None] | None = None,
) -> None:
    """Forward every item from ``receive`` to ``send``, in order.

    Until every ``ready`` event is set, items are taken as fast as they come (the sender never
    blocks) and held in ``queue``; afterwards the queue is replayed, and the sender waits while
    the queue holds ``queue.memory`` items or more. Closes ``send`` at the end, and the queue.

    :param failed: told of a write error of the queue (a full disk) before anything closes, so
        that the caller can stop what sends to ``receive`` first; the error is raised then
    """
    state: dict[str, Any] = {"more": anyio.Event(), "room": anyio.Event(), "ended": False}
    started = False

    async def take() -> None:
        nonlocal started
        async with receive:
            async for item in receive:
                try:
                    queue.push(item)
                except OSError as exc:
                    if failed is not None:
                        failed(exc)
                    raise
                state["more"].set()
                while started and len(queue) >= queue.memory:
                    state["room"] = anyio.Event()
                    await state["room"].wait()
        state["ended"] = True
        state["more"].set()

    async def give() -> None:
        nonlocal started
        async with send:
            for event in ready:
                await event.wait()
            started = True
            while True:
                while queue:
                    await send.send(queue.pop())
                    if len(queue) < queue.memory:
                        state["room"].set()
                if state["ended"]:
                    return
                state["more"] = anyio.Event()
                await state["more"].wait()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            tg.start_soon(give)
    finally:
        queue.close()
