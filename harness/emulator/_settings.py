"""The emulator's settings: what ``harness emulator`` flags and ``PUT /_harness/config`` set."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["EmulatorSettings", "parse_latency"]


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """How the emulator behaves; everything but ``seed`` can change while it runs.

    :param throttle: ``"aws"`` enforces the quotas in ``specs/quotas.yaml`` per (account, region,
        operation); ``"off"`` never throttles
    :param fault_rate: share of requests answered with InternalServerException 500
    :param latency_ms: extra delay per request, uniform in ``[min, max]`` milliseconds
    :param seed: seeds the fault and latency draws (``None``: random)
    :param proton_registration_delay: seconds a Proton template version stays
        ``REGISTRATION_IN_PROGRESS`` before it becomes ``DRAFT``
    :param idempotency_ttl: seconds a client token is remembered (Greengrass documents 8 hours)
    :param check_responses: validate every response against its output shape and answer a 500
        naming the emulator bug when one does not conform (for the emulator's own tests)
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
        if not 0.0 <= self.fault_rate <= 1.0:
            raise InvalidArgument(f"fault_rate={self.fault_rate!r}: expected a share in [0, 1]")
        lo, hi = self.latency_ms
        if lo < 0 or hi < lo:
            raise InvalidArgument(f"latency_ms={self.latency_ms!r}: expected 0 <= MIN <= MAX")
        if self.proton_registration_delay < 0 or self.idempotency_ttl <= 0:
            raise InvalidArgument("delays must be positive")

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
        for name in ("fault_rate", "proton_registration_delay", "idempotency_ttl"):
            if name in values:
                try:
                    values[name] = float(values[name])
                except (TypeError, ValueError):
                    raise InvalidArgument(f"{name}={values[name]!r}: expected a number") from None
        return replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        return asdict(self)


def parse_latency(value: Any) -> tuple[float, float]:
    """``50``, ``"50"``, ``"20:80"`` or ``[20, 80]`` as a ``(min, max)`` pair of milliseconds.

    :raises InvalidArgument: for anything else
    """
    try:
        if isinstance(value, list | tuple) and len(value) == 2:
            return float(value[0]), float(value[1])
        if isinstance(value, int | float):
            return float(value), float(value)
        text = str(value)
        lo, _, hi = text.partition(":")
        return float(lo), float(hi or lo)
    except (TypeError, ValueError):
        raise InvalidArgument(f"latency {value!r}: expected MS or MIN:MAX") from None
