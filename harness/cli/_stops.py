"""Clean stops for the commands that drive the engine: SIGINT and SIGTERM, the grace period, and
the ``--resume`` command printed when a run stops early.

The first signal asks the engine to stop (no new item, the calls in flight finish); a second one,
or the end of the grace period, cancels the calls still in flight. Either way the engine returns
its partial summary, so the journal is flushed and the summary written as for a finished run. A
signal that arrives before the run started (during the preflight) ends the command at once:
nothing was sent.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from typing import TYPE_CHECKING, Any

import anyio
import click
from click.core import ParameterSource

from harness.errors import HarnessError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from harness.engine import Engine

__all__ = [
    "DEFAULT_STOP_GRACE",
    "Interrupted",
    "SignalStop",
    "exit_status",
    "resume_command",
    "stop_options",
]

#: Seconds the calls in flight get to finish after the first signal.
DEFAULT_STOP_GRACE = 10.0

#: The conventional exit status of a command ended by a signal: 128 + its number.
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
    """130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


class Interrupted(HarnessError):
    """A signal arrived before the run started: nothing was sent."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = exit_status(signum)
        name = signal.Signals(signum).name
        super().__init__(f"{name} received before the run started; nothing was sent")


class SignalStop:
    """Turns SIGINT and SIGTERM into engine stops for the length of an ``async with``.

    :param engine: the engine to stop
    :param say: prints one line for the user
    :param grace: seconds the calls in flight get before they are cancelled
    """

    def __init__(self, engine: Engine, say: Callable[[str], None], grace: float) -> None:
        self.engine = engine
        self.say = say
        self.grace = grace
        #: set once ``engine.run()`` is under way: a signal then stops it cleanly
        self.running = False
        self.signum: int | None = None

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[SignalStop]:
        """Watch the signals while the body runs.

        :raises Interrupted: when a signal arrived before :attr:`running` was set
        """
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, tg)
                try:
                    yield self
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The task group wraps what the body raised (a JobError from the preflight...):
            # callers expect the error itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        if self.signum is not None and not self.running:
            raise Interrupted(self.signum)

    async def _watch(self, tg: anyio.abc.TaskGroup) -> None:
        with anyio.open_signal_receiver(*_SIGNALS) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.signum is None:
                    self.signum = signum
                    if not self.running:
                        tg.cancel_scope.cancel()  # the preflight: nothing was sent yet
                        return
                    self.say(
                        f"{name} received: no new items; the calls in flight get up to "
                        f"{self.grace:g} s to finish ({name} again stops at once)"
                    )
                    self.engine.stop(
                        f"{name} received", cause="signal", exit_code=exit_status(signum)
                    )
                    tg.start_soon(self._grace)
                else:
                    self.say(f"{name} received again: cancelling the calls in flight")
                    self.engine.stop(f"{name} received", immediate=True)

    async def _grace(self) -> None:
        await anyio.sleep(self.grace)
        self.say(f"grace period of {self.grace:g} s over: cancelling the calls in flight")
        self.engine.stop("grace period over", immediate=True)


def stop_options(fn: Any) -> Any:
    """``--stop-grace`` and ``--max-connection-failures``."""
    fn = click.option(
        "--max-connection-failures",
        type=click.IntRange(0),
        default=20,
        show_default=True,
        metavar="N",
        help="Stop the run after N consecutive connection failures to an endpoint (0: never).",
    )(fn)
    return click.option(
        "--stop-grace",
        type=click.FloatRange(0, 3600),
        default=DEFAULT_STOP_GRACE,
        show_default=True,
        metavar="SECONDS",
        help="On SIGINT/SIGTERM, how long the calls in flight get to finish.",
    )(fn)


def resume_command(ctx: click.Context, journal: Path) -> str:
    """The command that continues the run of ``ctx``: the same options the user gave, with
    ``--resume --journal PATH`` (the real journal path)."""
    words = ["harness", ctx.command.name or "run"]
    for param in ctx.command.params:
        name = param.name or ""
        if name in ("resume", "journal", "dry_run"):
            continue
        if ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, None):
            continue
        value = ctx.params.get(name)
        if isinstance(param, click.Argument):
            words.append(str(value))
            continue
        assert isinstance(param, click.Option)
        flag = max(param.opts, key=len)
        if param.is_flag:
            if value:
                words.append(flag)
            continue
        for one in value if param.multiple and isinstance(value, tuple | list) else (value,):
            words.extend((flag, str(one)))
    words.extend(("--resume", "--journal", str(journal)))
    return shlex.join(words)
