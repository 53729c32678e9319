"""Rates on the command line: ``--rate`` of ``run``, ``list`` and ``load``, checked alike.

A rate is a positive, finite number of calls per second. ``nan``, ``inf``, zero and negatives
are usage errors naming the flag and the value, raised while the arguments are parsed, before
anything else (``--dry-run`` included). Rates below one call per second are valid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click

from harness.errors import HarnessError, InvalidArgument
from harness.model import parse_operation_ref

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["RATE", "parse_operation_rates", "parse_tps"]


def _problem(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return "not a number of calls per second"
    if not math.isfinite(value) or value <= 0:
        return "the rate must be a positive finite number of calls per second"
    return None


def parse_tps(text: str, flag: str = "--rate") -> float:
    """A rate in calls per second from ``text``.

    :raises InvalidArgument: naming ``flag`` and ``text`` when it is not a positive finite number
    """
    problem = _problem(text)
    if problem is not None:
        raise InvalidArgument(f"{flag} {text!r}: {problem}")
    return float(text)


class _Rate(click.ParamType[float, Any]):
    """``--rate TPS`` as a click type: the checks of :func:`parse_tps`.

    It raises :class:`InvalidArgument` rather than click's own usage error: one ``error:`` line
    naming the flag and the value, as ``run --rate OPERATION=TPS`` prints.
    """

    name = "tps"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        flag = param.opts[0] if param is not None and param.opts else "--rate"
        return parse_tps(str(value), flag)


#: The click type of a plain ``--rate TPS`` option.
RATE = _Rate()


def parse_operation_rates(
    values: tuple[str, ...], calls: Collection[tuple[str, str]]
) -> list[tuple[str, str, float]]:
    """``--rate OPERATION=TPS`` values as ``(service, operation, tps)``.

    ``OPERATION`` takes every spelling of :func:`~harness.model.parse_operation_ref`; it is
    looked up among the services of ``calls`` (the job's ``(service, operation)`` pairs) and
    must be one of them.

    :raises InvalidArgument: naming the flag and the value
    """
    services = sorted({service for service, _ in calls})
    rates: list[tuple[str, str, float]] = []
    for value in values:
        name, sep, tps = value.partition("=")
        if not sep:
            raise InvalidArgument(
                f"--rate {value!r}: expected OPERATION=TPS, e.g. CreateThing=50 or "
                "iot:CreateThing=50"
            )
        try:
            service, op = parse_operation_ref(name, services)
        except HarnessError as exc:
            raise InvalidArgument(f"--rate {value!r}: {exc}") from None
        if (service, op.name) not in calls:
            raise InvalidArgument(
                f"--rate {value!r}: no step of this job calls {service}:{op.name}"
            )
        problem = _problem(tps)
        if problem is not None:
            raise InvalidArgument(f"--rate {value!r}: {problem}")
        rates.append((service, op.name, float(tps)))
    return rates
