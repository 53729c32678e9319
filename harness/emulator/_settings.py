"""The emulator's settings: what ``harness emulator`` flags and ``PUT /_harness/config`` set."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MAX_IDEMPOTENCY_TTL",
    "MAX_LATENCY_MS",
    "MAX_PROTON_DELAY",
    "EmulatorSettings",
    "parse_latency",
]


#: Upper bounds of the settings (documented in the README's Admin API section).
MAX_LATENCY_MS = 60_000.0  # an SDK's default read timeout: a longer delay only times clients out
MAX_PROTON_DELAY = 3600.0
MAX_IDEMPOTENCY_TTL = 7 * 24 * 3600.0


def _number(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a float when it is a finite number in range; else a message naming ``name``.

    Booleans are refused although Python counts them as integers (``true`` is not a rate), and
    so are strings: JSON has numbers.

    :raises InvalidArgument: naming the setting, the value and the range
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name}={value!r}: expected a number")
    number = float(value)
    in_range = low < number <= high if low_open else low <= number <= high
    if not (math.isfinite(number) and in_range):
        bounds = f"{'more than' if low_open else 'at least'} {low:g} and at most {high:g}"
        raise InvalidArgument(f"{name}={value!r}: expected a finite number, {bounds}")
    return number


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """How the emulator behaves; everything but ``seed`` can change while it runs.

    :param throttle: ``"aws"`` enforces the quotas in ``specs/quotas.yaml`` per (account, region,
        operation); ``"off"`` never throttles
    :param fault_rate: share of requests answered with InternalServerException 500, in [0, 1]
    :param latency_ms: extra delay per request, uniform in ``[min, max]`` milliseconds, at most
        :data:`MAX_LATENCY_MS`
    :param seed: seeds the fault and latency draws (``None``: random)
    :param proton_registration_delay: seconds a Proton template version stays
        ``REGISTRATION_IN_PROGRESS`` before it becomes ``DRAFT`` (at most an hour)
    :param idempotency_ttl: seconds a client token is remembered (Greengrass documents 8 hours;
        more than 0, at most a week)
    :param check_responses: validate every response against its output shape and answer a 500
        naming the emulator bug when one does not conform (for the emulator's own tests)
    :raises InvalidArgument: naming a setting whose value is of the wrong type or out of range
    """

    throttle: Literal["aws", "off"] = "off"
    fault_rate: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 0.0)
    seed: int | None = None
    proton_registration_delay: float = 0.5
    idempotency_ttl: float = 8 * 3600.0
    check_responses: bool = False

    def __post_init__(self) -> None:
        if self.throttle not in ("aws", "off"):
            raise InvalidArgument(f"throttle={self.throttle!r}: expected 'aws' or 'off'")
        # Numbers are stored as floats whatever their JSON form (1 -> 1.0).
        set_ = object.__setattr__
        set_(self, "fault_rate", _number("fault_rate", self.fault_rate, 0.0, 1.0))
        if not (isinstance(self.latency_ms, tuple | list) and len(self.latency_ms) == 2):
            raise InvalidArgument(f"latency_ms={self.latency_ms!r}: expected (MIN, MAX)")
        lo, hi = (_number("latency_ms", v, 0.0, MAX_LATENCY_MS) for v in self.latency_ms)
        if hi < lo:
            raise InvalidArgument(f"latency_ms={self.latency_ms!r}: expected MIN <= MAX")
        set_(self, "latency_ms", (lo, hi))
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise InvalidArgument(f"seed={self.seed!r}: expected a whole number")
        delay = self.proton_registration_delay
        set_(
            self,
            "proton_registration_delay",
            _number("proton_registration_delay", delay, 0.0, MAX_PROTON_DELAY),
        )
        ttl = _number(
            "idempotency_ttl", self.idempotency_ttl, 0.0, MAX_IDEMPOTENCY_TTL, low_open=True
        )
        set_(self, "idempotency_ttl", ttl)
        if not isinstance(self.check_responses, bool):
            raise InvalidArgument(
                f"check_responses={self.check_responses!r}: expected true or false"
            )

    def updated(self, changes: Mapping[str, Any]) -> EmulatorSettings:
        """A copy with ``changes`` applied (as sent to ``PUT /_harness/config``).

        :raises InvalidArgument: naming an unknown setting or a bad value
        """
        known = {f.name for f in fields(self)} - {"seed"}
        unknown = set(changes) - known
        if unknown:
            raise InvalidArgument(f"unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
        values = dict(changes)
        if "latency_ms" in values:
            values["latency_ms"] = parse_latency(values["latency_ms"])
        return replace(self, **values)  # __post_init__ checks every value

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        return asdict(self)


def parse_latency(value: Any) -> tuple[float, float]:
    """``50``, ``"50"``, ``"20:80"`` or ``[20, 80]`` as a ``(min, max)`` pair of milliseconds.

    Only the shape is checked here; :class:`EmulatorSettings` checks the range.

    :raises InvalidArgument: for anything else
    """
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = (_number("latency_ms", v, 0.0, MAX_LATENCY_MS) for v in value)
        return low, high
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = _number("latency_ms", value, 0.0, MAX_LATENCY_MS)
        return number, number
    if isinstance(value, str):
        lo, sep, hi = value.partition(":")
        try:
            low = float(lo)
            high = float(hi) if sep else low
        except ValueError:
            pass
        else:
            return low, high
    raise InvalidArgument(f"latency {value!r}: expected MS or MIN:MAX milliseconds")
